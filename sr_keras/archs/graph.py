"""Reading a functional Keras model's graph from its config: which layers feed which. The tiler's
receptive-field analysis (sr_keras.infer.reach) and network interpolation's architecture comparison
(sr_keras.exports.interpolation) both walk it with `inbound_names`."""


def inbound_names(nodes):
    """Names of the layers feeding a layer, from its serialized inbound nodes (a layer config's
    "inbound_nodes": Keras 3 writes each input as a `__keras_tensor__` whose keras_history starts with
    the producing layer's name)."""
    names = []

    def walk(v):
        if isinstance(v, dict):
            hist = v.get("config", {}).get("keras_history") if v.get("class_name") == "__keras_tensor__" else None
            if hist:
                names.append(hist[0])
            else:
                for x in v.values():
                    walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(nodes)
    return names


def inbound_map(model):
    """{layer name: names of the layers feeding it} of a functional model ({} for other models)."""
    return {ly["name"]: inbound_names(ly.get("inbound_nodes", [])) for ly in model.get_config().get("layers", [])}
