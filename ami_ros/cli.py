"""`ami-ros`: the project's command line.

ami-ros collect       record exploration of the embedded robot as rosbag2 MCAP
ami-ros train         train the world model on rosbag2 recordings (torchrun for several GPUs)
ami-ros train-pose    fit the encoder's pixel pose network on a trained model
ami-ros train-policy  learn the planner's goal-conditioned proposal on a model
ami-ros train-slot    learn the scene slot and its forecast beside a model
ami-ros export        export a checkpoint to a model directory (ONNX graphs + manifest)
ami-ros eval          closed-loop success on the embedded robot, with baselines
ami-ros demo          the embedded robot and the node graph over DDS (separate processes, then one)
ami-ros bench         speed of the embedded robot and a model's latency per execution provider
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ami_ros.config import DataConfig, TrainRunConfig


def ros_environment(domain_id: int | None = None) -> dict[str, str]:
    """This process's environment, confined to loopback DDS on its own domain.

    Sets the same variables in os.environ, so rclpy in this process joins the same domain.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    os.environ.setdefault("MUJOCO_GL", "egl")
    if domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    else:
        os.environ.setdefault("ROS_DOMAIN_ID", str(10 + os.getpid() % 90))
    return dict(os.environ)


def run_folder(root: str, kind: str) -> Path:
    path = Path(root) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cmd_collect(args: argparse.Namespace) -> int:
    from ami_ros.config import CollectConfig, load_yaml
    from ami_ros.data.collect import collect

    cfg = load_yaml(args.config, CollectConfig, section="collect") if args.config else CollectConfig()
    overrides = {
        "episodes": args.episodes,
        "steps_per_episode": args.steps,
        "seed": args.seed,
        "episodes_per_shard": args.shard_episodes,
        "compression": args.compression,
        "jobs": args.jobs,
        "demo_fraction": args.demo_fraction,
        "probe_fraction": args.probe_fraction,
    }
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if args.image_size is not None:
        sim = dataclasses.replace(cfg.sim, image_width=args.image_size, image_height=args.image_size)
        cfg = dataclasses.replace(cfg, sim=sim)
    out = Path(args.out) if args.out else run_folder(args.output, "collect")
    print(json.dumps(collect(out, cfg), indent=2))
    return 0


def read_training_episodes(data: str, image_size: int, config: DataConfig | None = None) -> list[dict]:
    """Every bag under `data` (a bag directory or a folder of them) as training episodes, read with
    `config` (the robot's topics and joint names; default: the embedded arm's) at `image_size`."""
    from ami_ros.config import DataConfig
    from ami_ros.data.dataset import read_episodes

    config = dataclasses.replace(config or DataConfig(), image_size=image_size)
    return [ep.as_dict() for ep in read_episodes(data, config)]


def check_training_robot(robot: str | Path, cfg: TrainRunConfig) -> None:
    """The nodes' robot config (its planner_node section) against a training config, before hours of
    training: the checks loading the model on that robot will make (joint names and order, control
    period, joint limits within the model's normalisation range).

    Raises:
        ConfigError: naming the mismatch.
    """
    from ami_ros.config import ConfigError, ControllerConfig, from_params, load_ros_params
    from ami_ros.robot import model_mismatch

    c = from_params(ControllerConfig, load_ros_params(robot, "planner_node"))
    m = cfg.model
    why = model_mismatch(
        c.joint_names, c.control_period, (c.joint_lower, c.joint_upper),
        m.joint_names, cfg.data.control_period, m.joint_limits,
    )  # fmt: skip
    if why:
        raise ConfigError(f"{robot} against the training config: {why}")


def cmd_train(args: argparse.Namespace) -> int:
    from ami_ros.config import TrainRunConfig, load_yaml
    from ami_ros.world_model.evaluate import format_metrics
    from ami_ros.world_model.train import train

    cfg = load_yaml(args.config, TrainRunConfig)
    if args.init_checkpoint or args.freeze_encoder:
        overrides = {"init_checkpoint": args.init_checkpoint or cfg.train.init_checkpoint}
        overrides |= {"freeze_encoder": True} if args.freeze_encoder else {}
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    if args.robot_config:
        check_training_robot(args.robot_config, cfg)
    if args.resume and not args.out:
        raise SystemExit("ami-ros train: --resume needs --out (the folder of the run to continue)")
    episodes = read_training_episodes(args.data, cfg.model.image_size, cfg.data)
    out = Path(args.out) if args.out else run_folder(args.output, "train")
    result = train(cfg, episodes, out, command=" ".join(["ami-ros", *args.argv]), resume=args.resume)
    if "metrics" in result:  # rank 0
        print(format_metrics(result["metrics"]))
        print(f"checkpoint: {result['checkpoint']}")
    return 0


def cmd_train_pose(args: argparse.Namespace) -> int:
    from ami_ros.config import PoseTrainConfig, load_yaml
    from ami_ros.world_model.evaluate import format_metrics
    from ami_ros.world_model.pose import train_pose
    from ami_ros.world_model.train import load_checkpoint

    cfg = load_yaml(args.config, PoseTrainConfig, section="pose") if args.config else PoseTrainConfig()
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.precision is not None:
        cfg = dataclasses.replace(cfg, precision=args.precision)
    _, run_cfg, _ = load_checkpoint(args.checkpoint)
    episodes = read_training_episodes(args.data, run_cfg.model.image_size)
    metrics = train_pose(args.checkpoint, episodes, args.out, cfg, command=" ".join(["ami-ros", *args.argv]))
    print(format_metrics(metrics))
    print(f"checkpoint: {Path(args.out) / 'checkpoint.pt'}")
    return 0


def cmd_train_policy(args: argparse.Namespace) -> int:
    import yaml

    from ami_ros.config import PolicyTrainConfig, load_yaml
    from ami_ros.runtime import default_model_dir
    from ami_ros.world_model.policy import train_policy

    cfg = load_yaml(args.config, PolicyTrainConfig, section="policy") if args.config else PolicyTrainConfig()
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.cost_weights:
        cfg = dataclasses.replace(cfg, cost_weights=tuple(args.cost_weights))
    model = args.model or str(default_model_dir())
    size = int(yaml.safe_load((Path(model) / "manifest.yaml").read_text())["image"]["size"][0])
    episodes = read_training_episodes(args.data, size)
    metrics = train_policy(model, episodes, args.out or model, cfg, command=" ".join(["ami-ros", *args.argv]))
    print(json.dumps({k: v for k, v in metrics.items() if k != "history"}, indent=2))
    print(f"model directory: {args.out or model}")
    return 0


def cmd_train_slot(args: argparse.Namespace) -> int:
    import yaml

    from ami_ros.config import SlotTrainConfig, load_yaml
    from ami_ros.runtime import default_model_dir
    from ami_ros.world_model.scene_slot import train_slot

    cfg = load_yaml(args.config, SlotTrainConfig, section="slot") if args.config else SlotTrainConfig()
    for key in ("steps", "renderer_steps"):
        if getattr(args, key) is not None:
            cfg = dataclasses.replace(cfg, **{key: getattr(args, key)})
    model = args.model or str(default_model_dir())
    manifest = yaml.safe_load((Path(model) / "manifest.yaml").read_text())
    episodes = read_training_episodes(args.data, cfg.image_size)
    record = train_slot(
        model, episodes, args.out or model, cfg,
        joint_limits=manifest["joints"]["limits_rad"], joint_names=manifest["joints"]["names"],
        work_dir=args.work_dir, command=" ".join(["ami-ros", *args.argv]),
    )  # fmt: skip
    print(json.dumps(record["metrics"], indent=2))
    print(f"model directory: {args.out or model}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ami_ros.world_model.export import export_checkpoint
    from ami_ros.world_model.train import load_checkpoint

    episodes = None
    if args.data:
        _, run_cfg, _ = load_checkpoint(args.checkpoint)
        episodes = read_training_episodes(args.data, run_cfg.model.image_size, run_cfg.data)
    manifest = export_checkpoint(args.checkpoint, args.out, episodes)
    print(json.dumps({"model_dir": args.out, "files": list(manifest.get("files", {}))}, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ami_ros.config import ControllerConfig, EvalConfig, from_params, load_ros_params
    from ami_ros.eval import closed_loop as cl
    from ami_ros.paths import share_file
    from ami_ros.runtime import default_model_dir, load_model

    robot = args.robot_config or share_file("config", "robots", "tabletop_arm.yaml")
    controller = from_params(ControllerConfig, load_ros_params(robot, "planner_node"))
    overrides = {k: v for k, v in (("method", args.method), ("samples", args.samples),
                                   ("iterations", args.iterations), ("prior_weight", args.prior_weight))
                 if v is not None}  # fmt: skip
    if "samples" in overrides:
        overrides["elites"] = min(controller.planner.elites, args.samples)
    controller = dataclasses.replace(
        controller, planner=dataclasses.replace(controller.planner, **overrides),
        cost_weights=tuple(args.weights) if args.weights else controller.cost_weights,
    )  # fmt: skip
    model_dir = args.model or default_model_dir()
    runtime = load_model(model_dir, controller.joint_names, intra_op_threads=args.threads)
    cfg = EvalConfig(
        task=args.task, episodes=args.episodes, seed=args.seed, max_steps=args.steps, controller=controller
    )
    report = cl.evaluate_policy(cl.controller_policy(runtime, cfg), cfg, declares_reached=True)
    if args.ablations:  # the same controller with one lever off, on the same seeds
        weights = controller.cost_weights or tuple(runtime.cost_weights)
        ablated = {
            'approach off (approach.urdf: "")': dataclasses.replace(
                controller, approach=dataclasses.replace(controller.approach, urdf="")
            ),
            "scene term off (image-token cost weights 0)": dataclasses.replace(
                controller, cost_weights=(0.0, 0.0, float(weights[-1]))
            ),
        }
        report["ablations"] = {
            name: cl.evaluate_policy(
                cl.controller_policy(runtime, dataclasses.replace(cfg, controller=c)),
                cfg,
                declares_reached=True,
            )
            for name, c in ablated.items()
        }
        for result in report["ablations"].values():
            result.pop("per_episode", None)
    report["robot_config"] = str(robot)
    report["providers"] = sorted(set(runtime.providers.values()))
    metrics = runtime.manifest.get("metrics") or {}  # the model's held-out figures, from its training
    report["model_metrics"] = {k: metrics[k] for k in ("kstep_ratio", "block_forecast") if k in metrics}
    slot_forecast = (runtime.manifest.get("scene_slot") or {}).get("metrics", {}).get("slot_forecast")
    if slot_forecast:  # the scene slot's held-out figures, from `ami-ros train-slot`
        report["model_metrics"]["slot_forecast"] = slot_forecast
    random_actions = cl.random_policy(cfg, runtime.action_limits, args.seed)
    report["baselines"] = {"random": cl.evaluate_policy(random_actions, cfg)}
    if args.task == "reach":
        privileged = cl.privileged_reach_policy(cfg, runtime.action_limits, args.seed)
        report["baselines"]["privileged_true_joint_state"] = cl.evaluate_policy(privileged, cfg)
    elif args.privileged_push or args.ablations:
        privileged = cl.privileged_push_policy(cfg, runtime.action_limits, args.seed)
        report["baselines"]["privileged_true_sim_state"] = cl.evaluate_policy(privileged, cfg)
    if args.json:
        print(json.dumps(report))
        return 0
    print(json.dumps({k: v for k, v in report.items() if k != "per_episode"}, indent=2))
    keys = ("success_rate", "false_reached_rate", "mean_start_distance_m", "mean_final_distance_m",
            "tick_ms_p50")  # fmt: skip
    print(f"\n{'policy':<28}" + "".join(f"{k:>24}" for k in keys))
    rows = {"controller (world model)": report, **report.get("ablations", {}), **report["baselines"]}
    for name, result in rows.items():
        cells = (f"{result[k]:.3f}" if k in result else "-" for k in keys)
        print(f"{name:<28}" + "".join(f"{c:>24}" for c in cells))
    for k, f in report["model_metrics"].get("block_forecast", {}).get("horizons", {}).items():
        print(
            f"model's block forecast, {k} steps ahead (held-out, block moving): predicted "
            f"{f['predicted_cm']:.2f} cm, copy-last {f['copy_last_cm']:.2f} cm, "
            + (f"arm only {f['arm_only_cm']:.2f} cm, " if "arm_only_cm" in f else "")
            + f"true latent {f['true_latent_cm']:.2f} cm"
        )
    for k, f in report["model_metrics"].get("slot_forecast", {}).get("horizons", {}).items():
        if "moves" in f:
            moves, still = f["moves"], f.get("still", {})
            print(
                f"scene slot forecast, {k} steps ahead (held-out, block moving): forecast "
                f"{moves['forecast_cm']:.2f} cm, copy-last {moves['copy_last_cm']:.2f} cm "
                f"({f['copy_last_over_forecast']:.2f}x better)"
                + (f"; block still: {still['forecast_cm']:.2f} cm" if still else "")
            )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ami_ros.ros.demo import run_demo

    ros_environment(args.domain_id)
    out = run_folder(args.output, "demo")
    summary = run_demo(
        out, tasks=tuple(args.tasks), episodes=args.episodes, seed=args.seed,
        episode_seconds=args.seconds, model_dir=args.model, stacks=tuple(args.stacks),
    )  # fmt: skip
    print(json.dumps({k: v for k, v in summary.items() if k != "episodes"}, indent=2))
    expected = args.episodes * len(args.tasks) * len(args.stacks)
    return 0 if summary["episodes_completed"] == expected else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from ami_ros.eval.bench_sim import bench_sim

    out = run_folder(args.output, "bench")
    if args.stack:
        import yaml

        from ami_ros.ros.bench_stack import bench_stack, format_report

        overrides = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise SystemExit(f"--set takes <node>.<parameter>=<value>, got {item!r}")
            overrides[key] = yaml.safe_load(value)
        stack = bench_stack(args.seconds or 30.0, args.bag, out, overrides, args.executor_threads)
        (out / "bench_stack.json").write_text(json.dumps(stack, indent=2))
        print(json.dumps(stack) if args.json else f"{format_report(stack)}\nsaved {out / 'bench_stack.json'}")
        return 0 if all(layout["alive_at_end"] for layout in stack["layouts"].values()) else 1
    report = bench_sim(seconds=args.seconds or 10.0)
    if args.model:
        from ami_ros.eval.bench_model import bench_providers

        report["model"] = {
            "model_dir": str(args.model),
            "batch": args.batch,
            "providers": bench_providers(
                args.model, batch=args.batch, threads=args.threads,
                trt_cache_dir=args.trt_cache_dir or None, trt_fp16=args.trt_fp16,
            ),
        }  # fmt: skip
        from ami_ros.config import ControllerConfig, from_params, load_ros_params
        from ami_ros.eval.bench_tick import bench_tick
        from ami_ros.paths import share_file

        robot = share_file("config", "robots", "tabletop_arm.yaml")
        controller = from_params(ControllerConfig, load_ros_params(robot, "planner_node"))
        report["model"]["plan_tick"] = bench_tick(args.model, controller, threads=args.threads)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for key, value in report.items():
        if key != "model":
            print(f"{key:>34}: {value}")
    for key, value in report.get("model", {}).get("plan_tick", {}).items():
        print(f"{'plan tick ' + key:>34}: {value:.2f}")
    for provider, figures in report.get("model", {}).get("providers", {}).items():
        print(f"model on {provider}:")
        for key, value in figures.items():
            print(f"{key:>34}: {value}")
    print(f"saved {out / 'bench.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ami_ros.config import PRECISIONS

    parser = argparse.ArgumentParser(prog="ami-ros", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    collect = sub.add_parser("collect", help="record exploration of the embedded robot as rosbag2 MCAP")
    collect.add_argument("--config", help="YAML file with a `collect:` section (CollectConfig)")
    collect.add_argument("--episodes", type=int)
    collect.add_argument("--steps", type=int, help="control steps per episode")
    collect.add_argument("--seed", type=int, help="seed of the first episode")
    collect.add_argument("--shard-episodes", type=int, help="episodes per bag directory")
    collect.add_argument("--image-size", type=int, help="camera image side in pixels")
    collect.add_argument("--compression", choices=("zstd", "lz4", "none"))
    collect.add_argument("--jobs", type=int, help="worker processes recording shards in parallel")
    collect.add_argument("--demo-fraction", type=float, help="fraction of goal-directed push demonstrations")
    collect.add_argument(
        "--probe-fraction", type=float, help="fraction of probes of the block (chunked random steps)"
    )
    collect.add_argument("--out", help="output folder (default: a new run folder under --output)")
    collect.add_argument("--output", default="runs")
    collect.set_defaults(func=cmd_collect)

    train = sub.add_parser("train", help="train the world model (torchrun for several GPUs)")
    train.add_argument("--config", required=True, help="training YAML (model + train sections)")
    train.add_argument("--data", required=True, help="a rosbag2 directory or a folder of them")
    train.add_argument(
        "--robot-config", help="the nodes' robot config (ROS parameter file) to check the config against"
    )
    train.add_argument("--out", help="output folder (default: a new run folder under --output)")
    train.add_argument("--output", default="runs")
    train.add_argument(
        "--resume", action="store_true", help="continue the unfinished run in --out from its checkpoint"
    )
    train.add_argument(
        "--init-checkpoint", help="start from this checkpoint (overrides train.init_checkpoint)"
    )
    train.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="train the predictor only, on cached latents of the --init-checkpoint encoder",
    )
    train.set_defaults(func=cmd_train)

    pose = sub.add_parser("train-pose", help="fit the encoder's pixel pose network on a trained model")
    pose.add_argument("--checkpoint", required=True, help="a `train` checkpoint")
    pose.add_argument("--data", required=True, help="the bags the model was trained on")
    pose.add_argument("--out", required=True, help="folder for the new checkpoint")
    pose.add_argument("--config", help="YAML file with a `pose:` section (PoseTrainConfig)")
    pose.add_argument("--epochs", type=int)
    pose.add_argument("--precision", choices=PRECISIONS, help="PoseTrainConfig.precision")
    pose.set_defaults(func=cmd_train_pose)

    policy = sub.add_parser("train-policy", help="learn the planner's goal-conditioned proposal on a model")
    policy.add_argument("--model", help="model directory (default: the shipped tabletop_arm)")
    policy.add_argument("--data", required=True, help="bags to learn from (the model's training data)")
    policy.add_argument("--out", help="model directory to write (default: --model, extended in place)")
    policy.add_argument("--config", help="YAML file with a `policy:` section (PolicyTrainConfig)")
    policy.add_argument("--steps", type=int)
    policy.add_argument(
        "--cost-weights", type=float, nargs="+",
        help="rollout-cost weights to ship with the proposal (the manifest's default_weights)",
    )  # fmt: skip
    policy.set_defaults(func=cmd_train_policy)

    slot = sub.add_parser("train-slot", help="learn the scene slot and its forecast beside a model")
    slot.add_argument("--model", help="model directory (default: the shipped tabletop_arm)")
    slot.add_argument("--data", required=True, help="bags to learn from (the model's training data)")
    slot.add_argument("--out", help="model directory to write (default: --model, extended in place)")
    slot.add_argument("--config", help="YAML file with a `slot:` section (SlotTrainConfig)")
    slot.add_argument("--work-dir", help="folder that keeps the trained arm layer, so a killed run resumes")
    slot.add_argument("--steps", type=int, help="SlotTrainConfig.steps")
    slot.add_argument("--renderer-steps", type=int, help="SlotTrainConfig.renderer_steps")
    slot.set_defaults(func=cmd_train_slot)

    export = sub.add_parser("export", help="export a checkpoint to a model directory")
    export.add_argument("--checkpoint", required=True)
    export.add_argument("--out", required=True, help="model directory to write, e.g. models/tabletop_arm")
    export.add_argument("--data", help="bags for the parity check on held-out frames (else random inputs)")
    export.set_defaults(func=cmd_export)

    ev = sub.add_parser("eval", help="closed-loop success on the embedded robot, with baselines")
    ev.add_argument("--task", choices=("reach", "push"), default="reach")
    ev.add_argument("--episodes", type=int, default=50)
    ev.add_argument("--seed", type=int, default=100_000, help="first episode seed (training used 0..)")
    ev.add_argument("--steps", type=int, default=60, help="control ticks per episode")
    ev.add_argument("--model", help="model directory (default: the shipped tabletop_arm)")
    ev.add_argument("--threads", type=int, default=2, help="onnxruntime CPU threads")
    ev.add_argument(
        "--robot-config",
        help="ROS parameter file whose planner_node section sets the controller (default: the shipped "
        "config/robots/tabletop_arm.yaml, as the node runs)",
    )
    ev.add_argument("--method", choices=("cem", "mppi"), help="override planner.method")
    ev.add_argument("--samples", type=int, help="override planner.samples (action sequences per iteration)")
    ev.add_argument("--iterations", type=int, help="override planner.iterations (per tick)")
    ev.add_argument(
        "--prior-weight", type=float,
        help="override planner.prior_weight (pull towards the model's proposal, when it has one)",
    )  # fmt: skip
    ev.add_argument(
        "--weights", type=float, nargs="+",
        help="override cost_weights (default: the robot config's, else the model manifest's)",
    )  # fmt: skip
    ev.add_argument(
        "--privileged-push", action="store_true",
        help="push: also run the privileged planner: the approach to the true goal pose, then CEM on the "
        "true simulator state, every sample rolled out at once (--ablations runs it too)",
    )  # fmt: skip
    ev.add_argument(
        "--ablations", action="store_true",
        help="also run the controller with the approach off and with the scene term off (same seeds), "
        "and for push the privileged planner",
    )  # fmt: skip
    ev.add_argument("--json", action="store_true", help="one JSON object on one line")
    ev.set_defaults(func=cmd_eval)

    demo = sub.add_parser("demo", help="the full stack drives the embedded robot to goal images over ROS 2")
    demo.add_argument("--episodes", type=int, default=3, help="episodes per task")
    demo.add_argument("--tasks", nargs="+", choices=("reach", "push"), default=["reach", "push"])
    demo.add_argument(
        "--stacks", nargs="+", choices=("separate", "one_process"), default=["separate", "one_process"],
        help="run the episodes with the nodes as separate processes, in one process, or both in turn",
    )  # fmt: skip
    demo.add_argument("--seconds", type=float, default=12.0, help="wall seconds per episode")
    demo.add_argument("--seed", type=int, default=200_000, help="episode seeds follow it (training used 0..)")
    demo.add_argument("--model", default="", help="model directory (default: the shipped tabletop_arm)")
    demo.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from pid)")
    demo.add_argument("--output", default="runs", help="folder for run folders")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="measure the embedded robot's speed")
    bench.add_argument(
        "--stack", action="store_true",
        help="camera-to-command latency of the node stack, both layouts, on a replayed bag",
    )  # fmt: skip
    bench.add_argument(
        "--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
        help="--stack: a node parameter over the robot config, e.g. planner_node.runtime.intra_op_threads=1",
    )  # fmt: skip
    bench.add_argument(
        "--executor-threads", type=int, default=0,
        help="--stack: executor threads of every node process (> 1: MultiThreadedExecutor; default 1)",
    )  # fmt: skip
    bench.add_argument(
        "--bag", default="", help="--stack: the bag to replay (default: one recorded from the embedded arm)"
    )
    bench.add_argument(
        "--seconds", type=float,
        help="seconds per measurement: simulated (default 10); --stack: replayed per layout (default 30)",
    )  # fmt: skip
    bench.add_argument(
        "--model", help="also time this model directory on every execution provider onnxruntime offers"
    )
    bench.add_argument("--batch", type=int, default=256, help="planner batch for the model timings")
    bench.add_argument("--threads", type=int, default=2, help="onnxruntime CPU threads")
    bench.add_argument("--json", action="store_true", help="print the report as JSON only")
    bench.add_argument("--trt-cache-dir", default="", help="TensorRT engine cache folder (TensorRT only)")
    bench.add_argument("--trt-fp16", action="store_true", help="TensorRT: build fp16 engines")
    bench.add_argument("--output", default="runs")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded with trained models
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
