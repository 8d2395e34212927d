"""Keras callbacks in the learnloop loop, called as `keras.Model.fit` calls them.

Real `keras.callbacks.Callback` subclasses, Keras's built-ins (EarlyStopping, ReduceLROnPlateau, CSVLogger, ...)
and plain objects with Keras-style `on_*` methods (as tutorials write them) all work: importing this package registers
`wrap_keras` as an adapter (`callbacks.core.register_adapter`), so `Learner.add_cbs` wraps them at the edge and
the loop knows nothing of Keras. keras itself is never imported here.

`hooks` reads hook names and signatures, `model` is the `keras.Model` surface callbacks see, `callback` runs them.
"""

from ..core import register_adapter
from .callback import KerasCallback, RunningMeans, wrap_keras
from .hooks import KERAS_HOOKS
from .model import KerasModel, KerasOptimizer

register_adapter(wrap_keras, "give it Keras-style methods (on_train_begin, on_epoch_end, on_batch_end, ...)")

__all__ = ["KERAS_HOOKS", "KerasCallback", "KerasModel", "KerasOptimizer", "RunningMeans", "wrap_keras"]
