"""The background engine: one long-lived QThread that owns the model and a job queue."""
from app.engine.engine import Engine, array_to_qimage, is_out_of_memory

__all__ = ["Engine", "array_to_qimage", "is_out_of_memory"]
