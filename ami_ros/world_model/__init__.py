"""The JEPA world model in torch: encoder, predictor, losses, training, evaluation, ONNX export.

Used where models are trained (`ami-ros train`, `ami-ros export`), never on the robot, which runs
the exported graphs through `ami_ros.runtime` (numpy + onnxruntime only).

    from ami_ros.world_model.train import train, load_checkpoint
    from ami_ros.world_model.export import export_checkpoint, export_model
    from ami_ros.world_model.evaluate import evaluate, format_metrics
"""
