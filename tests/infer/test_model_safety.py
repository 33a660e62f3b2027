"""sr_keras.infer.model_safety and the loaders that use it: a SavedModel without model.keras is refused unless
the user vouches for it (--trust-model), and even then checked before any of it runs.

Hostile SavedModels are built here with plain TensorFlow, as an attacker would write them; each one
that would touch the file system aims at a marker file in tmp_path, and the tests look for it.
"""
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import attr_value_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import upscale as upscale_cli
from sr_keras.core.errors import UserError
from sr_keras.exports.savedmodel import export_model
from sr_keras.infer.inference import load_upscaler, receptive_radius, upscale_image
from sr_keras.train import gan
import sr_keras
from sr_keras.infer.model_safety import (ALLOWED_OPS, check_savedmodel, first_disallowed_op, read_savedmodel,
    serving_functions)

IMAGES = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
CONFIG = GeneratorConfig(4, num_blocks=1, filters=8)


def _upscale4(images, kernel):
    """x4 tensor math (conv + depth-to-space), uint8 in and out, as an export's signature."""
    x = tf.cast(images, tf.float32) / 255.0
    y = tf.nn.depth_to_space(tf.nn.conv2d(x, kernel, 1, "SAME"), 4)
    return {"sr": tf.cast(tf.clip_by_value(tf.round(y * 255.0), 0, 255), tf.uint8)}


def _save(module, path, serve):
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return str(path)


def _module(extra):
    """A x4 upscaler whose signature also runs extra(images) first (the hostile part)."""

    class Model(tf.Module):
        def __init__(self):
            self.k = tf.Variable(tf.fill([3, 3, 3, 48], 1.0 / 27.0))

        @tf.function(input_signature=[IMAGES])
        def serve(self, images):
            extra(images)
            return _upscale4(images, self.k)

    return Model()


@pytest.fixture
def mark(tmp_path):
    return str(tmp_path / "MARK")


def writes(mark):
    def extra(images):
        tf.io.write_file(mark, "owned")

    return extra


def writes_in_a_branch(mark):
    # the write sits in If's then_branch, a function reached only through a function-valued attribute
    def write():
        tf.io.write_file(mark, "owned")
        return tf.constant(0)

    def extra(images):
        tf.cond(tf.reduce_sum(tf.cast(images, tf.int32)) >= 0, write, lambda: tf.constant(1))

    return extra


def calls_python(mark):
    def touch(_):
        open(mark, "w").close()
        return np.int32(0)

    def extra(images):
        tf.py_function(touch, [images], tf.int32)

    return extra


def prints(mark):
    def extra(images):  # formats its message first (StringFormat), then prints it to a file (PrintV2)
        tf.print("hello", images[0, 0, 0], output_stream=f"file://{mark}")

    return extra


@pytest.mark.parametrize("extra,op", [(writes, "WriteFile"), (writes_in_a_branch, "WriteFile"),
                                      (calls_python, "EagerPyFunc"), (prints, "StringFormat")])
def test_a_savedmodel_whose_graph_reaches_outside_tensor_math_is_refused_before_it_runs(tmp_path, mark, extra, op):
    path = _save(m := _module(extra(mark)), tmp_path / "evil_sm", m.serve)
    for trust in (False, True):  # untrusted: refused as a bare SavedModel; vouched for: refused for its op
        for load in (lambda: load_upscaler(path, trust_model=trust), lambda: sr_keras.load(path, trust_model=trust),
                     lambda: sr_keras.upscale(np.zeros((4, 4, 3), np.uint8), model=path, trust_model=trust),
                     lambda: gan.load_init_generator(CONFIG.build(), path, CONFIG, trust_model=trust)):
            with pytest.raises(UserError) as e:
                load()
            text = str(e.value)
            assert (f"'{path}': refused: its serving graph runs {op}, outside the tensor-math allowlist" in text
                    and text.endswith("no flag runs it: give an export folder with model.keras")) if trust else \
                f"'{path}': refused: a SavedModel without model.keras is a program" in text
            assert "\n" not in text and not os.path.exists(mark)
    assert "pass trust_model=True" in str(pytest.raises(UserError, load_upscaler, path).value)
    assert "pass trust_model=True" in str(pytest.raises(UserError, sr_keras.load, path).value)


def _func(name):
    return attr_value_pb2.AttrValue(func=attr_value_pb2.NameAttrList(name=name))


def _call(node, f):
    """`node` becomes a call of `f` (a NameAttrList) taking nothing and returning one int32."""
    node.op = "StatefulPartitionedCall"
    node.attr["f"].func.CopyFrom(f)
    node.attr["Tin"].list.SetInParent()
    node.attr["Tout"].list.type.append(tf.int32.as_datatype_enum)


def _relay_savedmodel(tmp_path, mark, by_default):
    """A clean x4 SavedModel, edited as a protocol buffer: its serving function also calls `Relay`,
    whose only node calls the function its attribute `fn` names, through a placeholder; `fn` is the
    function `Evil` (which writes `mark`), passed inside the call's `f` or as the attribute's default."""
    path = _save(m := _module(lambda images: images), tmp_path / "relay_sm", m.serve)

    @tf.function(input_signature=[])
    def evil():
        tf.io.write_file(mark, "owned")
        return tf.constant(0)

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((tmp_path / "relay_sm" / "saved_model.pb").read_bytes())
    meta = proto.meta_graphs[0]
    library = meta.graph_def.library
    library.function.add().CopyFrom(evil.get_concrete_function().function_def)
    library.function[-1].signature.name = "Evil"
    relay = library.function.add()
    relay.signature.name = "Relay"
    relay.signature.output_arg.add(name="out", type=tf.int32.as_datatype_enum)
    fn = relay.signature.attr.add(name="fn", type="func")
    if by_default:
        fn.default_value.CopyFrom(_func("Evil"))
    _call(relay.node_def.add(name="call"), attr_value_pb2.NameAttrList())
    relay.node_def[0].attr["f"].placeholder = "fn"  # replaces the empty func: Relay names no function
    relay.ret["out"] = "call:output:0"
    root = next(f for f in library.function if f.signature.name == serving_functions(meta.object_graph_def)[0])
    f = attr_value_pb2.NameAttrList(name="Relay")
    if not by_default:
        f.attr["fn"].CopyFrom(_func("Evil"))
    _call(root.node_def.add(name="relay_call"), f)
    returned = root.ret[next(iter(root.ret))].split(":")[0]
    next(n for n in root.node_def if n.name == returned).input.append("^relay_call")  # the output waits for it
    (tmp_path / "relay_sm" / "saved_model.pb").write_bytes(proto.SerializeToString())
    # what the fixture is about: no node anywhere names Evil in its own function-valued attribute
    direct = {v.func.name for g in library.function for n in g.node_def for v in n.attr.values()}
    assert "Relay" in direct and "Evil" not in direct
    return path


@pytest.mark.parametrize("by_default", [False, True], ids=["passed-in-the-call", "attribute-default"])
def test_a_function_handed_on_through_a_function_attribute_is_checked_too(tmp_path, mark, by_default):
    path = _relay_savedmodel(tmp_path, mark, by_default)
    for load in (lambda: load_upscaler(path, trust_model=True), lambda: sr_keras.load(path, trust_model=True),
                 lambda: gan.load_init_generator(CONFIG.build(), path, CONFIG, trust_model=True)):
        with pytest.raises(UserError) as e:
            load()
        assert f"'{path}': refused: its serving graph runs WriteFile, outside the tensor-math allowlist" in \
            str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(mark)


def test_the_refused_savedmodel_really_runs_its_code_when_tensorflow_calls_it(tmp_path, mark):
    # Guards the tests above: the same fixture writes its file once TensorFlow runs it.
    path = _save(m := _module(writes(mark)), tmp_path / "evil_sm", m.serve)
    tf.saved_model.load(path).signatures["serving_default"](images=tf.zeros([1, 4, 4, 3], tf.uint8))
    assert os.path.exists(mark)


def _selector_savedmodel(path, mark):
    """An x4 SavedModel whose serving graph calls only `plain` (tensor math); the library also holds
    `swapped`, never referenced, which writes `mark` and carries the same api_implements: TensorFlow's
    implementation selector runs it in place of `plain` on a CPU."""
    spec = tf.TensorSpec([None, None, None, 3], tf.float32)

    @tf.function(experimental_attributes={"api_implements": "sr_test_x4", "api_preferred_device": "GPU"},
                 autograph=False)
    def plain(x):
        return tf.identity(x)

    @tf.function(experimental_attributes={"api_implements": "sr_test_x4", "api_preferred_device": "CPU"},
                 autograph=False)
    def swapped(x):
        tf.io.write_file(mark, "swapped in")
        return tf.identity(x)

    class Model(tf.Module):
        @tf.function(input_signature=[IMAGES], autograph=False)
        def serve(self, images):
            swapped.get_concrete_function(spec).add_to_graph()  # in the library, named by no node
            y = plain.get_concrete_function(spec)(tf.cast(images, tf.float32))
            y = tf.image.resize(y, tf.shape(images)[1:3] * 4, method="nearest")
            return {"sr": tf.cast(y, tf.uint8)}

    return _save(m := Model(), path, m.serve)


def test_a_function_the_optimiser_would_swap_in_is_refused_even_when_trusted(tmp_path, mark):
    path = _selector_savedmodel(tmp_path / "selector_sm", mark)
    # the swapped-in function is reached by no attribute: a check of what the graph names alone passes it
    meta = read_savedmodel(path).meta_graphs[0]
    library = {f.signature.name: f for f in meta.graph_def.library.function}
    assert first_disallowed_op(library, serving_functions(meta.object_graph_def)) is None
    assert any(n.op == "WriteFile" for f in library.values() for n in f.node_def)
    for trust in (False, True):
        for load in (lambda: load_upscaler(path, trust_model=trust), lambda: sr_keras.load(path, trust_model=trust),
                     lambda: gan.load_init_generator(CONFIG.build(), path, CONFIG, trust_model=trust)):
            with pytest.raises(UserError) as e:
                load()
            assert ("carries api_implements, by which TensorFlow may run it in place of another" if trust else
                    "refused: a SavedModel without model.keras") in str(e.value)
    assert not os.path.exists(mark)
    # what the refusal prevents: TensorFlow itself runs the function no node names
    previous = tf.config.optimizer.get_experimental_options().get("implementation_selector", True)
    tf.config.optimizer.set_experimental_options({"implementation_selector": True})
    try:
        tf.saved_model.load(path).signatures["serving_default"](images=tf.zeros([1, 4, 4, 3], tf.uint8))
    finally:
        tf.config.optimizer.set_experimental_options({"implementation_selector": previous})
    assert os.path.exists(mark)


def test_code_that_would_run_while_loading_is_refused(tmp_path, mark):
    # A resource's initialize function runs inside tf.saved_model.load, before any signature is called.
    class Sneaky(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)

        def _initialize(self):
            return tf.io.write_file(mark, "owned")

    m = _module(lambda images: images)
    m.table = Sneaky()
    path = _save(m, tmp_path / "loader_sm", m.serve)
    with pytest.raises(UserError, match=r"refused: it holds a resource \(a table, queue or other state\) whose "
                                        r"functions run while it loads"):
        load_upscaler(path, trust_model=True)
    assert not os.path.exists(mark)
    tf.saved_model.load(path)  # what the check prevented
    assert os.path.exists(mark)


def test_a_tf1_savedmodel_is_refused(tmp_path):
    # TF1 models load by running a restore op and an init op of the model's choosing
    proto = saved_model_pb2.SavedModel(meta_graphs=[meta_graph_pb2.MetaGraphDef()])
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "saved_model.pb").write_bytes(proto.SerializeToString())
    with pytest.raises(UserError, match=r"^model '.*v1': refused: it is a TF1 SavedModel"):
        check_savedmodel(str(tmp_path / "v1"), trust_model=True)
    (tmp_path / "v1" / "saved_model.pb").write_bytes(b"\xff not a protocol buffer")
    with pytest.raises(UserError, match=r"^model '.*v1': saved_model.pb is not a SavedModel"):
        check_savedmodel(str(tmp_path / "v1"), trust_model=True)


def test_a_damaged_fingerprint_is_one_line_not_a_traceback_and_exit_0(sm_only, tmp_path, capsys):
    # tf.saved_model.load prints a traceback for it and goes on; refused before TensorFlow reads it
    _, path = sm_only
    damaged = shutil.copytree(path, tmp_path / "damaged")
    (damaged / "fingerprint.pb").write_bytes(b"\x0a\xff\xff")
    with pytest.raises(UserError) as e:
        check_savedmodel(str(damaged), trust_model=True)
    assert str(e.value).startswith(f"model '{damaged}': fingerprint.pb is damaged (") and "\n" not in str(e.value)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        upscale_cli.main(["--model", str(damaged), "--trust-model", str(tmp_path / "a.png"),
                          "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and "Traceback" not in captured.err + captured.out
    assert captured.err.strip().startswith(f"error: --model '{damaged}': fingerprint.pb is damaged")


def test_a_classifier_savedmodel_is_refused_naming_its_output(tmp_path):
    class Classifier(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones([3, 10]))

        @tf.function(input_signature=[IMAGES])
        def serve(self, images):
            return {"logits": tf.matmul(tf.reduce_mean(tf.cast(images, tf.float32), axis=[1, 2]), self.w)}

    path = _save(c := Classifier(), tmp_path / "cls_sm", c.serve)
    with pytest.raises(UserError) as e:
        load_upscaler(path, trust_model=True)
    assert str(e.value) == f"model '{path}': not an image-to-image model (its output is float32 [N, 10])"


def test_a_foreign_keras_classifier_or_fixed_size_model_is_refused(tmp_path):
    inp = keras.Input((None, None, 3))
    classifier = keras.Model(inp, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(inp)))
    classifier.save(tmp_path / "cls.keras")
    with pytest.raises(UserError, match=r"'.*cls.keras': not an image-to-image model \(its output is \[N, 10\]\)$"):
        load_upscaler(str(tmp_path / "cls.keras"))
    fixed = keras.Model(inp, keras.layers.Resizing(64, 64)(inp))
    fixed.save(tmp_path / "fixed.keras")
    with pytest.raises(UserError, match=r"not an upscaler at an integer scale: 8x8 -> 64x64 and 8x12 -> 64x64; "
                                        r"a fixed output size$"):
        load_upscaler(str(tmp_path / "fixed.keras"))


@pytest.fixture(scope="module")
def sm_only(tmp_path_factory):
    """One of our exports with model.keras removed: the SavedModel alone."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("safety")
    generator = CONFIG.build()
    export_model(generator, str(root / "export"), CONFIG)
    shutil.copytree(root / "export", root / "sm_only")
    os.remove(root / "sm_only" / "model.keras")
    return generator, str(root / "sm_only")


def test_our_own_savedmodel_only_export_is_refused_unless_trusted_then_passes_the_check(sm_only):
    generator, path = sm_only
    for load in (lambda: load_upscaler(path), lambda: sr_keras.load(path),
                 lambda: sr_keras.upscale(np.zeros((4, 4, 3), np.uint8), model=path)):
        with pytest.raises(UserError, match="refused: a SavedModel without model.keras"):
            load()
    lr = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    want = np.clip(np.round(generator(lr[None] / 255.0).numpy()[0] * 255), 0, 255)
    for up in (load_upscaler(path, trust_model=True), sr_keras.load(path, trust_model=True)):
        assert up.scale == 4 and np.abs(up(lr).astype(int) - want).max() <= 1
    assert np.abs(sr_keras.upscale(lr, model=path, tile=0, trust_model=True).astype(int) - want).max() <= 1


def test_each_path_resolves_a_model_once_and_checks_a_savedmodel_alone_once(sm_only, tmp_path, monkeypatch):
    from sr_keras import api
    from sr_keras.infer import inference, loading, model_safety

    generator, path = sm_only
    calls = []

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(loading, "resolve_model", counted("resolve", loading.resolve_model))
    check = counted("check", model_safety.check_savedmodel)
    monkeypatch.setattr(model_safety, "check_savedmodel", check)
    monkeypatch.setattr(inference, "check_savedmodel", check)
    monkeypatch.setattr(api, "_CACHE", None)
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "in.png")
    export = os.path.join(os.path.dirname(path), "export")
    for load in (lambda: load_upscaler(path, trust_model=True), lambda: sr_keras.load(path, trust_model=True),
                 lambda: gan.load_init_generator(CONFIG.build(), path, CONFIG, trust_model=True),
                 lambda: upscale_cli.main(["--trust-model", "--model", path, str(tmp_path / "in.png"), "--out",
                                           str(tmp_path / "up")])):
        calls.clear()
        load()
        assert calls == ["resolve", "check"]
    for load in (lambda: load_upscaler(export), lambda: gan.load_init_generator(CONFIG.build(), export, CONFIG)):
        calls.clear()
        load()  # model.keras: loaded in safe mode, no graph to check
        assert calls == ["resolve"]


@pytest.mark.parametrize("command", ["evaluate", "export", "interpolate", "train_srresnet"])
def test_every_command_refuses_a_bare_savedmodel_nobody_vouched_for(sm_only, tmp_path, capsys, command):
    from sr_keras.cli import evaluate, export, interpolate, train_srresnet

    _, path = sm_only
    (tmp_path / "hr").mkdir()
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(tmp_path / "hr" / "a.png")
    main, argv, needle = {
        "evaluate": (evaluate.main, ["--hr-dir", str(tmp_path / "hr"), "--scale", "4", "--model", f"m={path}",
                                     "--out", str(tmp_path / "ev")], "refused: a SavedModel without model.keras"),
        "export": (export.main, [path, "--out", str(tmp_path / "x.tflite"), "--format", "tflite"],
                   "a folder without model.keras"),
        "interpolate": (interpolate.main, [path, path, "--alpha", "0.5", "--out", str(tmp_path / "mix")],
                        "a folder without model.keras"),
        "train_srresnet": (train_srresnet.main, ["--track", "bicubic_x4", "--data", str(tmp_path), "--out",
                                                 str(tmp_path / "run"), "--export", str(tmp_path / "exp"),
                                                 "--init-generator", path],
                           "refused: a SavedModel without model.keras"),
    }[command]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and needle in err and "\n" not in err, err


# The allowlist as reviewed: every op here is pure tensor math on its inputs (no file, process, network,
# Python, print, random state or resource beyond a captured variable's read). A change to ALLOWED_OPS must
# be reviewed against that rule and then made here as well: this list is the review's record.
REVIEWED_ALLOWLIST = {
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "StopGradient", "PreventGradient", "EnsureShape",
    "ReadVariableOp", "PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While",
    "StatelessWhile", "Case", "StatelessCase",
    "Abs", "Add", "AddN", "AddV2", "Sub", "Mul", "MulNoNan", "Div", "DivNoNan", "RealDiv", "FloorDiv", "FloorMod",
    "TruncateDiv", "TruncateMod", "Mod", "Maximum", "Minimum", "Neg", "Reciprocal", "Inv", "Square", "Sqrt", "Rsqrt",
    "SquaredDifference", "Pow", "Exp", "Expm1", "Log", "Log1p", "Sin", "Cos", "Tan", "Atan", "Atan2", "Tanh",
    "Sigmoid", "Erf", "Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Softplus", "Softsign", "Sign", "Round", "Rint",
    "Floor", "Ceil", "Cast", "ClipByValue", "Select", "SelectV2", "Equal", "NotEqual", "Greater", "GreaterEqual",
    "Less", "LessEqual", "LogicalAnd", "LogicalOr", "LogicalNot", "IsNan", "IsInf", "IsFinite", "CheckNumerics",
    "Softmax", "LogSoftmax", "BiasAdd",
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "Conv2D", "Conv2DBackpropInput",
    "Conv3D", "DepthwiseConv2dNative", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "LRN",
    "MaxPool", "MaxPoolV2", "AvgPool",
    "Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin", "Cumsum", "Cumprod",
    "Shape", "ShapeN", "Size", "Rank", "Reshape", "ExpandDims", "Squeeze", "Transpose", "Pack", "Unpack",
    "Concat", "ConcatV2", "Split", "SplitV", "Slice", "StridedSlice", "Tile", "Pad", "PadV2", "MirrorPad",
    "Fill", "ZerosLike", "OnesLike", "Range", "ReverseV2", "GatherV2", "GatherNd", "BroadcastTo", "BroadcastArgs",
    "OneHot", "DepthToSpace", "SpaceToDepth", "BatchToSpaceND", "SpaceToBatchND",
    "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea", "ScaleAndTranslate",
}


def test_the_allowlist_as_a_whole_is_the_reviewed_one_and_holds_no_op_with_side_effects():
    # Tests the whole set, so any op added (Save, SaveV2, WriteFile, ...) or removed fails here.
    assert set(ALLOWED_OPS) == REVIEWED_ALLOWLIST, (sorted(set(ALLOWED_OPS) - REVIEWED_ALLOWLIST),
                                                    sorted(REVIEWED_ALLOWLIST - set(ALLOWED_OPS)))
    # and, independently of the list above, no op of TensorFlow's registry that touches files, processes,
    # Python, printing, random state or resources is in it (by the families of their names)
    side_effects = ("Save", "Restore", "File", "Write", "Read", "Print", "PyFunc", "Summary", "Random",
                    "Variable", "Table", "Queue", "Stack", "Iterator", "Dataset", "Checkpoint", "Matching", "Merge",
                    "Assign", "Resource", "Handle", "Mutex", "Barrier", "Accumulator", "Collective", "Send", "Recv",
                    "Debug")
    stateful = sorted(op for op in dir(tf.raw_ops) if any(word in op for word in side_effects))
    assert {"Save", "SaveV2", "WriteFile", "ReadFile", "PrintV2", "EagerPyFunc", "AssignVariableOp",
            "RandomUniform", "VarHandleOp"} <= set(stateful)
    assert set(ALLOWED_OPS) & set(stateful) == {"ReadVariableOp"}  # reads a handle it is given (see model_safety)
    assert set(ALLOWED_OPS) <= set(dir(tf.raw_ops))  # every name is a real op: no typo that allows nothing


def test_the_allowlist_holds_every_op_of_our_exports():
    # The op set of exports of both architectures (with BatchNorm, bicubic skip, PixelShuffle) as
    # listed by a SavedModel dump; the export test above loads one for real.
    ours = {"AddV2", "BiasAdd", "Cast", "ConcatV2", "Const", "Conv2D", "Conv2DBackpropInput", "DepthToSpace",
            "DepthwiseConv2dNative", "ExpandDims", "Identity", "LeakyRelu", "Maximum", "Minimum", "MirrorPad", "Mul",
            "Neg", "NoOp", "Pack", "ReadVariableOp", "RealDiv", "Relu", "Reshape", "ReverseV2", "Round", "Rsqrt",
            "Shape", "Squeeze", "StatefulPartitionedCall", "StridedSlice", "Sub", "Tile", "Transpose"}
    assert ours <= ALLOWED_OPS
    assert not {"WriteFile", "ReadFile", "PyFunc", "EagerPyFunc", "PrintV2", "VarHandleOp", "HashTableV2",
                "SaveV2", "RestoreV2", "MatchingFiles", "AssignVariableOp", "ImmutableConst"} & ALLOWED_OPS


def test_tiles_through_a_savedmodel_only_export_are_seamless(sm_only):
    generator, path = sm_only
    up = load_upscaler(path, trust_model=True)
    # the probe's reach (rounded out to whole LR pixels, plus one) covers the layer graph's exact radius:
    # head 9x9 (4) + one block's two 3x3 (2) + body 3x3 (1) + up convs (1 + 1/2) + tail 9x9 at x4 (1) = 10
    assert receptive_radius(generator) == 10 and 10 <= up.radius <= 12 and not up.whole_image
    lr = np.random.default_rng(1).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    whole = upscale_image(up, lr, tile=0)
    np.testing.assert_array_equal(upscale_image(up, lr, tile=8, overlap=0), whole)  # margin = the measured radius
    up.radius = 2
    assert (upscale_image(up, lr, tile=8, overlap=0) != whole).any()  # a margin below it shows seams


def test_a_savedmodel_reaching_past_the_probe_runs_whole_images(tmp_path):
    class Global(tf.Module):  # every output pixel depends on the whole picture (its mean)
        def __init__(self):
            self.k = tf.Variable(tf.fill([1, 1, 3, 48], 1.0 / 3.0))

        @tf.function(input_signature=[IMAGES])
        def serve(self, images):
            x = tf.cast(images, tf.float32) / 255.0
            x = 0.5 * x + 0.5 * tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            y = tf.nn.depth_to_space(tf.nn.conv2d(x, self.k, 1, "SAME"), 4)
            return {"sr": tf.cast(tf.clip_by_value(tf.round(y * 255.0), 0, 255), tf.uint8)}

    path = _save(g := Global(), tmp_path / "global_sm", g.serve)
    up = load_upscaler(path, trust_model=True)
    assert up.radius is None and up.whole_image
    lr = np.random.default_rng(2).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(upscale_image(up, lr, tile=8), upscale_image(up, lr, tile=0))


def _keras_x4(kernel_value):
    inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False)
    model = keras.Model(inp, keras.layers.UpSampling2D(4)(conv(inp)))
    conv.kernel.assign(np.full((1, 1, 3, 3), kernel_value, np.float32))
    return model


def test_non_finite_model_output_is_refused_not_written(tmp_path):
    _keras_x4(np.nan).save(tmp_path / "nan.keras")
    with pytest.raises(UserError) as e:
        load_upscaler(str(tmp_path / "nan.keras"))
    assert str(e.value) == (f"model '{tmp_path / 'nan.keras'}': model output is not finite (NaN or inf); "
                            "nothing is written")
    # finite on the black probe image, inf on a bright one (3 x 1.0 x 3e38 overflows float32)
    _keras_x4(3e38).save(tmp_path / "inf.keras")
    up = load_upscaler(str(tmp_path / "inf.keras"))
    bright = np.full((6, 6, 3), 255, np.uint8)
    with pytest.raises(UserError, match=r"model output is not finite \(NaN or inf\)"):
        upscale_image(up, bright, tile=0)
    Image.fromarray(bright).save(tmp_path / "bright.png")
    with pytest.raises(SystemExit) as exit_:
        upscale_cli.main(["--model", str(tmp_path / "inf.keras"), str(tmp_path / "bright.png"),
                          "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and not list(tmp_path.glob("out/*.png"))  # an --out left empty may be removed


def test_upscale_py_refuses_then_trust_model_runs_our_savedmodel(sm_only, tmp_path, capsys):
    _, path = sm_only
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (8, 9, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        upscale_cli.main(["--model", path, str(tmp_path / "a.png"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err == (f"error: --model '{path}': refused: a SavedModel without model.keras is a "
                                             "program TensorFlow would run (docs/reliability.md, Threat model); give "
                                             "an export folder with model.keras, or pass --trust-model if you wrote "
                                             "this model yourself")
    upscale_cli.main(["--model", path, "--trust-model", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")])
    assert Image.open(tmp_path / "o" / "a_x4.png").size == (36, 32)
    evil = _save(m := _module(writes(str(tmp_path / "MARK"))), tmp_path / "evil_sm", m.serve)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        upscale_cli.main(["--model", evil, "--trust-model", str(tmp_path / "a.png"), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and err.startswith(f"error: --model '{evil}': refused: its serving graph runs "
                                                    "WriteFile") and "\n" not in err
    assert not os.path.exists(tmp_path / "MARK") and not list(tmp_path.glob("o2/*"))


def test_init_generator_takes_a_checked_savedmodel_s_weights_by_name(sm_only):
    source, path = sm_only
    keras.utils.set_random_seed(1)
    target = CONFIG.build()
    assert not np.allclose(target.weights[0].numpy(), source.weights[0].numpy())
    gan.load_init_generator(target, path, CONFIG, trust_model=True)
    for got, want in zip(target.weights, source.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    x2 = GeneratorConfig(2, num_blocks=1, filters=8)
    with pytest.raises(UserError, match=r"is a x4 model but this run trains x2"):
        gan.load_init_generator(x2.build(), path, x2, trust_model=True)
    two = GeneratorConfig(4, num_blocks=2, filters=8)
    with pytest.raises(UserError, match=r"has another architecture \(--num-blocks 1 --filters 8 "):
        gan.load_init_generator(two.build(), path, two, trust_model=True)


def _edit_savedmodel(path, edit):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    edit(proto.meta_graphs[0])
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(proto.SerializeToString())


def test_init_generator_refuses_savedmodel_variables_that_do_not_all_match_by_name(sm_only, tmp_path):
    # Same shapes in the same order, other names: only names say which array is which, so it is refused
    # rather than copied in graph order (where same-shaped arrays could come permuted).
    _, path = sm_only
    renamed = shutil.copytree(path, tmp_path / "renamed")

    def rename(meta):
        for i, node in enumerate(meta.object_graph_def.nodes):
            if node.WhichOneof("kind") == "variable":
                node.variable.name = f"other_{i}"

    _edit_savedmodel(renamed, rename)
    target = CONFIG.build()
    before = [w.numpy().copy() for w in target.weights]
    with pytest.raises(UserError) as e:
        gan.load_init_generator(target, str(renamed), CONFIG, trust_model=True)
    n = len(target.weights)
    assert str(e.value) == (f"model {renamed} has another architecture ({CONFIG.describe()}; {n} variables, "
                            f"0 of this run's {n} weights among them by name) than this run's generator "
                            f"({CONFIG.describe()}); pass the flags it was trained with")
    for got, want in zip(target.weights, before):
        np.testing.assert_array_equal(got.numpy(), want)


def test_init_generator_probes_the_scale_of_a_savedmodel_without_generator_json(sm_only, tmp_path):
    # no generator.json: the scale comes from calling the checked signature, not from this run's flags
    _, path = sm_only
    bare = shutil.copytree(path, tmp_path / "bare")
    os.remove(bare / "generator.json")
    x2 = GeneratorConfig(2, num_blocks=1, filters=8)
    with pytest.raises(UserError) as e:
        gan.load_init_generator(x2.build(), str(bare), x2, trust_model=True)
    assert str(e.value) == (f"model {bare} is a x4 model but this run trains x2 (--track); use a "
                            "generator trained on the same scale")


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.parametrize("command", ["train_srresnet", "train_srgan"])
def test_a_refused_init_generator_leaves_the_previous_run_in_place_under_fresh(tmp_path, mark, capsys, command, trust):
    # --fresh deletes the previous run's files: the refusal must come first, before any of that
    from sr_keras.cli import train_srgan, train_srresnet

    evil = _save(m := _module(writes(mark)), tmp_path / "evil_sm", m.serve)
    run = tmp_path / "run"
    previous = [run / "checkpoints" / "checkpoint.json", run / "checkpoints" / "last-e0001.weights.h5",
                run / "logs" / "train" / "events.out.tfevents.1"]
    for f in previous:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("previous run")
    main, extra = {"train_srresnet": (train_srresnet.main, []),
                   "train_srgan": (train_srgan.main, ["--vgg-weights", "random"])}[command]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--track", "bicubic_x4", "--data", str(tmp_path / "data"), "--out", str(run), "--export",
              str(tmp_path / "model"), "--num-blocks", "1", "--filters", "8", "--init-generator", evil, "--fresh",
              *extra, *(["--trust-model"] if trust else [])])
    err = capsys.readouterr().err.strip()
    refused = "its serving graph runs WriteFile" if trust else "a SavedModel without model.keras"
    assert exit_.value.code == 2 and err.startswith(f"error: --init-generator '{evil}': refused: {refused}")
    assert "\n" not in err
    assert all(f.read_text() == "previous run" for f in previous) and not os.path.exists(mark)
    assert not os.path.exists(tmp_path / "model")
