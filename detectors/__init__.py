"""Vision plug-ins: the Detector protocol and its implementations.

- :mod:`detectors.base`: the :class:`~detectors.base.Detector` protocol (``name``,
  ``detect(images)``, ``detect_stream(items, image_of)``, ``close()``) and helpers.
- :mod:`detectors.yolo`: :class:`~detectors.yolo.YoloDetector`, the ultralytics YOLO vehicle
  detector, built from :class:`~detectors.settings.YoloSettings`. An OpenVINO export on the
  CPU runs on the engine's own pipelined OpenVINO runner (:mod:`detectors.openvino_yolo`),
  which returns exactly ultralytics' detections at a lower cost per frame; every other model
  runs through ``ultralytics.YOLO`` (:mod:`detectors.ultralytics_yolo`).

Detections carry :class:`atcs.types.VehicleClass` values, never a model's own class index;
boxes are in the pixels of the image they were found in. This package imports only
``atcs.types`` and ``atcs.errors`` from the engine, and imports ultralytics and OpenVINO
lazily, when a detector is built.
"""
