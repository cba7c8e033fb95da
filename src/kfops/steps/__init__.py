"""The lifecycle, one module per step, in the order a model lives through them.

    extract -> validate -> prepare -> [tune] -> train -> evaluate -> bless -> register -> deploy
       ^                                                                                |
       +----------------- retrain <- monitor <- (captured traffic of the served model) --+

Each step module has a frozen ``...Inputs`` dataclass (typed values and paths: JSON and
comma-separated strings are decoded at the KFP edge, in ``kfops.components``) and a ``run``
function returning a typed result. Steps of a training run record what they did in the run
history through ``RunContext`` (``kfops.steps._run``). A step calls the domain modules below it
(``data``, ``contract``, ``features``, ``training``, ``evaluation``, ``blessing``,
``registry``, ``deploy``, ``monitoring``, ``tuning``) and never the other way round.

This package imports nothing on purpose: a pipeline task imports only its own step, and pays
only for that step's imports.
"""
