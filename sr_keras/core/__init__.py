"""The foundations every wing stands on: user errors and clean exits, the backend switch, picture files
and atomic writes, write probes of output folders, TensorFlow's start-up banner. Imports no other wing."""
