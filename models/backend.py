"""TensorFlow and Keras, imported here once, quietly: every module that needs them takes them from here.

TensorFlow's C++ core writes to the process's stderr on its own: CUDA probes on a
machine without a GPU ("Could not find cuda drivers", "failed call to cuInit"),
and harmless version skews at ERROR ("NodeDef mentions attribute ..."). A newcomer
reads them as failures. So, unless anomstream logs at DEBUG or the user set
TF_CPP_MIN_LOG_LEVEL themselves, TensorFlow's own threshold is 3 (fatal only),
what its import still writes straight to stderr (the probes run before its
logging is set up, so no setting reaches them) is logged at DEBUG under
`anomstream.tensorflow`, and its Python logger's INFO lines ("Assets written
to ...") stay below WARNING.
"""

from __future__ import annotations

import logging
import os

from anomstream.console import native_stderr_to_debug

log = logging.getLogger("anomstream.tensorflow")

VERBOSE = logging.getLogger("anomstream").isEnabledFor(logging.DEBUG)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if VERBOSE else "3")

if VERBOSE:
    import keras
    import tensorflow as tf
else:
    with native_stderr_to_debug(log):
        import keras
        import tensorflow as tf
    logging.getLogger("tensorflow").setLevel(logging.WARNING)

__all__ = ["keras", "tf"]
