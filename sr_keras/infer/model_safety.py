"""Check a SavedModel before TensorFlow loads or runs any of it: a SavedModel is a program.

Calling a SavedModel's signature runs its graph, and a graph can read and write files, start
processes or call Python (`WriteFile`, `PyFunc`, ...). Loading runs parts of it too:
`tf.saved_model.load` calls a resource's create and initialize functions (tables, queues), an
object's own restore function, and a TF1 model's restore and init ops. And TensorFlow may run a
function the graph never names: its optimiser swaps a function for another of the library carrying
the same `api_implements` attribute (the implementation selector).

So `check_savedmodel` has two layers (docs/reliability.md, "Threat model"):

1. A SavedModel without `model.keras` is refused unless the user vouches for it (`--trust-model`,
   `trust_model=True`): this project's exports always carry model.keras, which Keras loads in safe
   mode, so a bare SavedModel is foreign, and no static check of a graph is trusted alone.
2. A vouched-for one is still read as a protocol buffer (parsing runs nothing) and refused, in one
   line naming the model and what it would run, when it is:
   - a TF1 SavedModel (no object graph: its loader runs graph ops of the model's choosing);
   - an object the loader would run code for: a resource, custom save/restore functions, a
     registered class or saver;
   - a library function carrying `api_implements` or `api_preferred_device` (one the optimiser may
     swap in for another);
   - any op outside ALLOWED_OPS in the serving signature's function or in any function it reaches
     (function-valued attributes: PartitionedCall's `f`, If's branches, While's `cond` and `body`, ...,
     functions passed on inside those, and the defaults of a function's function-typed attributes);
   - a damaged fingerprint.pb (TensorFlow would print a traceback and go on).

What passes loads as captured variables restored by TensorFlow's own checkpoint reader, and its
serving function is tensor math on its input and those variables.
"""
import os

from sr_keras.core.errors import UserError, first_line

SIGNATURE = "serving_default"

# Tensor math an image-to-image network needs (docs/reliability.md, "Security"). Nothing here touches
# a file, the network, a process, Python, a log, or a resource other than the function's own captured
# variables (ReadVariableOp reads a handle the function was given; it cannot open one: VarHandleOp is
# not allowed). Call and control-flow ops are allowed because the functions they name are checked too.
ALLOWED_OPS = frozenset({
    # structure
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StopGradient", "PreventGradient", "EnsureShape",
    "ReadVariableOp", "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
    "StatelessWhile", "Case", "StatelessCase",
    # element-wise arithmetic and activations
    "Abs", "Add", "AddN", "AddV2", "Sub", "Mul", "MulNoNan", "Div", "DivNoNan", "RealDiv", "FloorDiv", "FloorMod",
    "TruncateDiv", "TruncateMod", "Mod", "Maximum", "Minimum", "Neg", "Reciprocal", "Inv", "Square", "Sqrt", "Rsqrt",
    "SquaredDifference", "Pow", "Exp", "Expm1", "Log", "Log1p", "Sin", "Cos", "Tan", "Atan", "Atan2", "Tanh",
    "Sigmoid", "Erf", "Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "Sign", "Round", "Rint",
    "Floor", "Ceil", "Cast", "ClipByValue", "Select", "SelectV2", "Equal", "NotEqual", "Greater", "GreaterEqual",
    "Less", "LessEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "IsNan", "IsInf", "IsFinite", "CheckNumerics",
    "Softmax", "LogSoftmax", "BiasAdd",
    # linear algebra and convolution
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2D", "Conv2DBackpropInput",
    "Conv3D", "DepthwiseConv2dNative", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "LRN",
    "MaxPool", "MaxPoolV2", "AvgPool",
    # reductions
    "Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin", "Cumsum", "Cumprod",
    # shapes and indexing
    "Shape", "ShapeN", "Size", "Rank", "Reshape", "ExpandDims", "Squeeze", "Transpose", "Pack", "Unpack",
    "Concat", "ConcatV2", "Split", "SplitV", "Slice", "StridedSlice", "Tile", "Pad", "PadV2", "MirrorPad",
    "Fill", "ZerosLike", "OnesLike", "Range", "ReverseV2", "GatherV2", "GatherNd", "BroadcastTo", "BroadcastArgs",
    "OneHot", "DepthToSpace", "SpaceToDepth", "BatchToSpaceND", "SpaceToBatchND",
    # image resampling
    "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea", "ScaleAndTranslate",
})

# Object-graph kinds tf.saved_model.load rebuilds without running any of the model's functions
# (a "resource" runs its create and initialize functions while loading).
_PASSIVE_KINDS = {"user_object", "variable", "function", "bare_concrete_function", "constant", "captured_tensor",
                  "asset"}


# Function attributes by which TensorFlow's implementation selector swaps one library function for another.
SWAP_ATTRS = ("api_implements", "api_preferred_device")


class UntrustedModel(UserError):
    """The one-line refusal of a SavedModel without model.keras that nobody vouched for, about `model`.

    Its advice names how to vouch as the library takes it, `trust_model=True`; a script that names its
    flags names its own (sr_keras.cli.parsing.naming_flags(trust_model="--trust-model")).
    """

    def __init__(self, shown, vouch="trust_model=True"):
        self.shown = shown
        super().__init__(self._text(shown, vouch), argument="model")

    @staticmethod
    def _text(shown, vouch):
        return (f"'{shown}': refused: a SavedModel without model.keras is a program TensorFlow would run "
                f"(docs/reliability.md, Threat model); give an export folder with model.keras, or pass {vouch} "
                "if you wrote this model yourself")

    def rename_arguments(self, names):
        if "trust_model" in names:
            self.detail = self._text(self.shown, names["trust_model"])
            self.rename(self.argument)
        super().rename_arguments(names)


def refusal(shown, what):
    """The one-line UserError about `model` refusing a vouched-for SavedModel for `what` it would run (no flag
    lifts it)."""
    return UserError(f"'{shown}': refused: {what} (docs/reliability.md, Security); no flag runs it: give "
                     "an export folder with model.keras", argument="model")


def read_savedmodel(path, shown=None):
    """The parsed saved_model.pb of a SavedModel folder (a protocol buffer: parsing runs nothing).

    Raises:
        UserError: one line about `model` when the file is unreadable or not a SavedModel.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    shown = path if shown is None else shown
    proto = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
    except OSError as e:
        raise UserError(f"'{shown}': cannot read saved_model.pb: {e.strerror or e}", argument="model") from e
    except Exception as e:  # protobuf's DecodeError, or a message too deeply nested
        raise UserError(f"'{shown}': saved_model.pb is not a SavedModel: {first_line(e)}", argument="model") from e
    return proto


def _functions_in(value):
    """Names of every function an AttrValue holds: its `func` and `list.func`, and, recursively, the
    functions passed to those as attributes (a call can hand G `fn = Evil`, which G calls through a
    placeholder attribute that names nothing itself)."""
    refs = ([value.func] if value.HasField("func") else []) + list(value.list.func)
    names = []
    for ref in refs:
        names.append(ref.name)
        for inner in ref.attr.values():
            names.extend(_functions_in(inner))
    return names


def _called(node, library):
    """Names of the functions a graph node calls: its op when that is a library function, and every
    function held by an attribute (f, then_branch, else_branch, cond, body, branches, ... and the
    functions passed on inside those)."""
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        names.extend(_functions_in(value))
    return names


def first_disallowed_op(library, roots):
    """(op, function) of the first op outside ALLOWED_OPS in the functions `roots` reach, or None.

    Args:
        library: {name: FunctionDef} of the model's function library.
        roots: names of the functions that will be called.
    """
    seen, stack = set(), list(reversed(roots))
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in library:
            return f"a function missing from its library ({name})", name
        function = library[name]
        # defaults of its function-typed attributes: what a placeholder names when no caller sets it
        calls = [f for arg in function.signature.attr for f in _functions_in(arg.default_value)]
        for value in function.attr.values():
            calls.extend(_functions_in(value))
        for node in function.node_def:
            if node.op not in library and node.op not in ALLOWED_OPS:
                return node.op, name
            calls.extend(_called(node, library))
        stack.extend(reversed(calls))
    return None


def _child(graph, node_id, name):
    for ref in graph.nodes[node_id].children:
        if ref.local_name == name:
            return ref.node_id
    return None


def serving_functions(graph):
    """Names of the concrete functions `.signatures["serving_default"]` calls, from the object graph
    (what tf.saved_model.load builds the signature from); [] when there is no such signature."""
    signatures = _child(graph, 0, "signatures") if graph.nodes else None
    node_id = None if signatures is None else _child(graph, signatures, SIGNATURE)
    if node_id is None:
        return []
    node = graph.nodes[node_id]
    kind = node.WhichOneof("kind")
    if kind == "bare_concrete_function":
        return [node.bare_concrete_function.concrete_function_name]
    if kind == "function":
        return list(node.function.concrete_functions)
    return []


def _load_time_code(graph):
    """What tf.saved_model.load would run of the model beyond restoring variables, or None."""
    for node in graph.nodes:
        kind = node.WhichOneof("kind")
        if kind not in _PASSIVE_KINDS:
            return f"it holds a {kind or 'typeless object'} (a table, queue or other state) whose functions run " \
                   "while it loads"
        if node.saveable_objects:
            return "its objects carry their own save/restore functions, which run while it loads"
        if node.registered_name or node.registered_saver:
            return (f"it names a registered class or saver ({node.registered_name or node.registered_saver}), "
                    "whose code runs while it loads")
    return None


def _swappable(library):
    """(function, attribute) of the first library function TensorFlow's implementation selector may swap
    in for another (it carries api_implements or api_preferred_device), or None."""
    for name, function in library.items():
        for attr in SWAP_ATTRS:
            if attr in function.attr:
                return name, attr
    return None


def _check_fingerprint(path, shown):
    """Refuse a fingerprint.pb that is not a FingerprintDef: tf.saved_model.load would print a traceback
    for it and go on."""
    from tensorflow.core.protobuf import fingerprint_pb2

    file = os.path.join(path, "fingerprint.pb")
    if not os.path.exists(file):
        return
    try:
        with open(file, "rb") as f:
            fingerprint_pb2.FingerprintDef().ParseFromString(f.read())
    except OSError as e:
        raise UserError(f"'{shown}': cannot read fingerprint.pb: {e.strerror or e}", argument="model") from e
    except Exception as e:  # protobuf's DecodeError
        raise UserError(f"'{shown}': fingerprint.pb is damaged ({first_line(e)}); delete it or export the "
                        "model again", argument="model") from e


def check_savedmodel(path, shown=None, trust_model=False):
    """Refuse a SavedModel nobody vouched for, and one whose loading or serving would run anything but
    tensor math; the one check every loader of a SavedModel without model.keras goes through.

    Args:
        path: the SavedModel folder.
        shown: the model as the user gave it (default: path).
        trust_model: the user vouches for it (--trust-model): the second layer still applies.

    Raises:
        UserError: one line about `model` naming it and the first thing refused (UntrustedModel when
            nobody vouched for it); nothing of it has run.
    """
    shown = path if shown is None else shown
    if not trust_model:
        raise UntrustedModel(shown)
    proto = read_savedmodel(path, shown)
    _check_fingerprint(path, shown)
    if len(proto.meta_graphs) != 1 or not proto.meta_graphs[0].HasField("object_graph_def"):
        raise refusal(shown, "it is a TF1 SavedModel, whose loader runs restore and init ops of the "
                             "model's choosing")
    meta = proto.meta_graphs[0]
    graph = meta.object_graph_def
    found = _load_time_code(graph)
    if found:
        raise refusal(shown, found)
    roots = serving_functions(graph)
    if not roots:
        raise UserError(f"'{shown}': the SavedModel has no {SIGNATURE} signature; give an export folder "
                        "of the training scripts", argument="model")
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    bad = first_disallowed_op(library, roots)
    if bad:
        raise refusal(shown, f"its serving graph runs {bad[0]}, outside the tensor-math allowlist of a "
                             "SavedModel")
    swap = _swappable(library)
    if swap:
        raise refusal(shown, f"its function {swap[0]} carries {swap[1]}, by which TensorFlow may run it in "
                             "place of another, unchecked")
