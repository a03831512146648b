"""The outside world's model formats: ONNX import (onnx_import) and export (onnx_export)."""
