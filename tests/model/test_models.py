import keras
import numpy as np
import pytest

from facekit.model.backbones import REGISTRY, get_backbone, resolve_weights
from facekit.model.models import build_finetune, build_scratch, export_from_train, flip_horizontal, input_adapter

REQUIRED = {"mobilenet_075", "mobilenetv2_035", "efficientnetb0", "efficientnetv2b0", "resnet50", "convnext_tiny"}


def _adapt(spec, x):
    inp = keras.Input((2, 2, 3))
    return keras.Model(inp, input_adapter(inp, spec.scale, spec.offset, spec.rgb)).predict(x, verbose=0)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_adapter_reproduces_keras_preprocessing(name):
    spec = get_backbone(name)
    rng = np.random.default_rng(0)
    bgr01 = rng.uniform(0, 1, (1, 2, 2, 3)).astype(np.float32)
    rgb255 = bgr01[..., ::-1] * 255.0
    if spec.builder.startswith("MobileNet"):
        want = keras.applications.mobilenet.preprocess_input(rgb255.copy())
    elif spec.builder == "ResNet50":
        want = keras.applications.resnet50.preprocess_input(rgb255.copy())
    else:  # EfficientNet and ConvNeXt normalise inside their own graph and take RGB 0..255
        want = rgb255
    np.testing.assert_allclose(_adapt(spec, bgr01), want, rtol=1e-4, atol=1e-3)


def test_registry_has_the_required_backbones():
    assert REQUIRED <= set(REGISTRY)
    with pytest.raises(ValueError, match="unknown backbone"):
        get_backbone("vgg99")


def test_scratch_model_contract():
    m = build_scratch()
    assert m.export.input_shape == (None, 128, 128, 3)
    assert list(m.export.output_names) == ["age", "gender"]
    assert m.train.get_layer("s4_pool").output.shape[1:3] == (4, 4)
    assert m.train.get_layer("gender").get_config()["activation"] == "sigmoid"
    x = np.random.default_rng(0).uniform(0, 1, (2, 128, 128, 3)).astype("float32")
    out = m.train.predict(x, verbose=0)
    np.testing.assert_allclose(out["age"][:, 0], (out["age_dist"] * np.arange(117)).sum(1), rtol=1e-4)
    swapped = build_scratch(output_order="gender,age").export
    assert list(swapped.output_names) == ["gender", "age"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_backbone_builds_headless(name):
    m = build_finetune(get_backbone(name), None)
    age, gender = m.export.predict(np.zeros((1, 128, 128, 3), "float32"), verbose=0)
    assert age.shape == (1, 1) and 0 <= gender[0, 0] <= 1


def test_offline_imagenet_weights_and_internal_resolution():
    spec = get_backbone("mobilenet_075")
    path = resolve_weights(spec, "imagenet")
    assert path is not None and path.endswith("mobilenet_7_5_224_tf_no_top.h5")
    m = build_finetune(spec, path, internal_size=160)
    ref = keras.applications.MobileNet(alpha=0.75, include_top=False, weights=path, input_shape=(160, 160, 3))
    np.testing.assert_array_equal(m.backbone.get_weights()[0], ref.get_weights()[0])
    assert m.export.get_layer("upsample").output.shape[1:3] == (160, 160)
    assert resolve_weights(spec, "none") is None
    with pytest.raises(FileNotFoundError):
        resolve_weights(spec, "/nope/weights.h5")


def test_flip_layer_is_an_exact_mirror():
    x = np.random.default_rng(1).uniform(0, 1, (2, 128, 128, 3)).astype("float32")
    inp = keras.Input((128, 128, 3))
    out = keras.Model(inp, flip_horizontal(inp)).predict(x, verbose=0)
    np.testing.assert_array_equal(out, x[:, :, ::-1])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["scratch", "finetune"])
def test_flip_averaging_export(task):
    m = (build_scratch((8, 8, 8, 8, 8), hidden=16) if task == "scratch"
         else build_finetune(get_backbone("mobilenetv2_035"), None, internal_size=144))
    tta = export_from_train(m.train, tta=True)
    assert list(tta.output_names) == ["age", "gender"]
    assert tta.get_layer("gender").get_config()["activation"] == "sigmoid"  # still a single sigmoid unit last
    x = np.random.default_rng(2).uniform(0, 1, (3, 128, 128, 3)).astype("float32")
    age, gender = tta.predict(x, verbose=0)
    age_m, gender_m = tta.predict(x[:, :, ::-1], verbose=0)
    np.testing.assert_allclose(age, age_m, rtol=1e-4)  # a mirror image gets the same answer
    np.testing.assert_allclose(gender, gender_m, rtol=1e-4)
    # It is the heads applied to the mean of the pooled features of both views.
    feat = keras.Model(m.train.inputs, m.train.get_layer("pool").output)
    f = (feat.predict(x, verbose=0) + feat.predict(x[:, :, ::-1], verbose=0)) / 2
    for name in ("head_drop0", "head_fc", "head_drop"):
        if any(layer.name == name for layer in m.train.layers):
            f = m.train.get_layer(name)(f)
    expected = m.train.get_layer("age")(m.train.get_layer("age_dist")(m.train.get_layer("age_logits")(f)))
    np.testing.assert_allclose(age, keras.ops.convert_to_numpy(expected), rtol=1e-4, atol=1e-4)
    assert "flip_mirror" not in {layer.name for layer in m.export.layers}  # the plain export is left as it was
