"""The JAX tests run in the TensorFlow-free environment of requirements-jax.txt with KERAS_BACKEND=jax
(.ci/run); in the TensorFlow environment of the main suite they are not collected."""
import os

if os.environ.get("KERAS_BACKEND") != "jax":
    collect_ignore_glob = ["test_*.py"]
