"""What a run hands to users: the SavedModel + model.keras export, TFLite conversion, model cards,
weight interpolation. Imports core, archs and infer."""
