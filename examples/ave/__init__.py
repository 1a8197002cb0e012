"""The AVE (audio-visual event localization) task pipeline shared by every model folder: data, training,
evaluation, prediction, figures, synthetic export, reference import, sweeps, checkpoints and runtime.

``python -m examples.ave <subcommand> --model NAME``; the models are ``examples/<name>/`` folders listed in
``examples.ave.registry``.
"""
