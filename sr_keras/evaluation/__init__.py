"""Scoring: PSNR/SSIM on Y, NIQE, the evaluation over tracks, results tables and figures, TensorBoard
reading. Imports core, data and infer."""
