"""Training and validation data: DIV2K and folder sources, LR/HR pairing, the tf.data and PyDataset
pipelines, degradations, MATLAB's imresize, the open photo corpus. Imports sr_keras.core."""
