"""Running a trained generator: model names and loading (with the safety checks), the Upscaler,
receptive field, memory budget and tiling, TFLite running, picture files in and out.
Imports sr_keras.core and sr_keras.archs."""
