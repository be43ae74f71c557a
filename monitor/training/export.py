"""Stage 3: ONNX export and int8 dynamic quantisation, so that serving needs no torch."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return out


def export_onnx(model_dir: Path, out_file: Path) -> None:
    """Any sequence-classification checkpoint `from_pretrained` can read becomes one ONNX file."""
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir))
    model.eval()
    wrapper = _Logits(model)
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    # The TorchScript exporter is deprecated but needs no onnxscript and gives a graph that
    # ONNX Runtime's dynamic quantiser handles; its tracer warnings are about Python control
    # flow on shapes, which the padded-batch check in the pipeline covers.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(out_file),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(fp32_file: Path, out_file: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32_file), str(out_file), weight_type=QuantType.QInt8)
