"""Feature extraction from a user's own videos in the AVE convention (VGG-19 pool5 + VGGish, the release layout).

    python -m examples.ave.extract --videos DIR --out FEATS --vgg19-weights FILE --vggish-weights FILE

Modules, one concept each: ``convention`` (the choices), ``decode`` (PyAV), ``sampling`` (which frames),
``image`` (frame preprocessing), ``vgg19`` / ``vggish`` (networks and weight files), ``weights`` (safe
loading), ``resample`` / ``logmel`` (VGGish's frontend), ``pipeline`` (one video), ``windows`` / ``labels``
(rows of 10 seconds), ``work`` (per-video files), ``writer`` (the release layout), ``release_stats`` (compare
with the release's audio), ``run`` (a folder, torchrun shards), ``cli`` (the subcommand), ``synthetic`` (test
videos), ``figure`` (the docs' figures). One video in, events and maps out (``predict --video``, ``visualize
--video``, and ``predict`` on an extract folder): ``video_options`` (the ``--video`` flags, the work folder),
``join`` (rows back on the video's seconds), ``video_events`` (a model over a video's rows), ``timeline``,
``overlay`` (maps over the frames), ``video_commands``.
PyAV is imported only when a video is decoded.
"""
