"""The ``sparsemac`` command line (:mod:`.cli`) and the end-to-end flows: the compression
flows (:mod:`.flows`), the ONNX importer behind ``sparsemac compress`` (:mod:`.importer`), the
demo (:mod:`.demo`), accuracy statistics (:mod:`.stats`), the one user-error type
(:mod:`.errors`) and all-or-nothing outputs (:mod:`.files`). The top of the stack: builds on
every other package, and none imports it."""
