"""Managed (lifecycle) nodes: the transitions every model-loading node shares.

A subclass declares its parameters in `__init__` and supplies these steps:
    configure(): read its config and load its model; raise ConfigError naming what is wrong. Its
        publishers are made with `create_lifecycle_publisher`, so they publish only when active.
    activate(): create its subscriptions, timers and services with `self.inputs(...)`; they are
        destroyed on deactivation, so an inactive node takes no input and does no work.
    deactivate(): last words while the publishers still publish (a planner holds the arm); runs
        on deactivation and on shutdown from active.
    release(): drop what configure() made (model sessions, buffers); publishers go by themselves.

    unconfigured --configure--> inactive --activate--> active --deactivate--> inactive
    inactive --cleanup--> unconfigured;   any --shutdown--> finalized (resources released)

A configure that fails leaves the node unconfigured, logs the reason as an error and keeps it in
`config_error`; `ros2 lifecycle set <node> configure` can retry. The `autostart` parameter
(default true) makes `ami_ros.ros.spin` configure and activate the node at start, as a lifecycle
manager would.
"""

from __future__ import annotations

import functools
import traceback
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.timer import Timer

from ami_ros.config import ConfigError

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class ManagedNode(LifecycleNode):
    """A lifecycle node that loads in configure, takes input only while active, releases on cleanup."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.declare_parameter(
            "autostart",
            True,
            ParameterDescriptor(description="configure and activate at start-up", read_only=True),
        )
        self.config_error = ""
        self._inputs: list[Subscription | Timer | Service] = []
        self._publishers_made: list[Any] = []
        # rclpy before Kilted (Humble, Jazzy) lets a transition that does not apply from the
        # current state raise out of the change_state service, which ends the process: refuse it.
        change_state = self._service_change_state
        change_state.callback = functools.partial(self._refuse_unavailable, change_state.callback)

    # ------------------------------------------------------------ what a subclass supplies
    def configure(self) -> None:
        """Read the config, load the model, create publishers. Raises ConfigError."""

    def activate(self) -> None:
        """Create subscriptions, timers and services with `self.inputs(...)`."""

    def deactivate(self) -> None:
        """Called after the inputs are gone, before the publishers stop (also on shutdown from active)."""

    def release(self) -> None:
        """Drop what `configure` made (sessions, buffers)."""

    # ------------------------------------------------------------ helpers
    def inputs(self, *entities: Subscription | Timer | Service) -> None:
        """Entities that live while the node is active (destroyed on deactivate)."""
        self._inputs.extend(entities)

    def create_lifecycle_publisher(self, *args: Any, **kwargs: Any) -> Any:
        publisher = super().create_lifecycle_publisher(*args, **kwargs)
        self._publishers_made.append(publisher)
        return publisher

    @property
    def state_label(self) -> str:
        """'unconfigured', 'inactive', 'active' or 'finalized'."""
        return self._state_machine.current_state[1]

    def destroy_node(self) -> None:
        """Destroy the node and its lifecycle state machine. rclpy's LifecycleNode leaves the state
        machine to the garbage collector, and until then it keeps the node alive: a node whose
        process had ended stayed in `ros2 node list` for the 20 s of its DDS lease."""
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()

    def _refuse_unavailable(self, change_state: Any, request: Any, response: Any) -> Any:
        available = [t[0] for t in self._state_machine.available_transitions]  # (id, label, ...)
        if not request.transition.label and request.transition.id not in available:
            self.get_logger().error(f"no transition {request.transition.id} from {self.state_label}")
            response.success = False
            return response
        return change_state(request, response)

    def _destroy_inputs(self) -> None:
        for entity in self._inputs:
            if isinstance(entity, Subscription):
                self.destroy_subscription(entity)
            elif isinstance(entity, Timer):
                self.destroy_timer(entity)
            else:
                self.destroy_service(entity)
        self._inputs.clear()

    def _release_all(self) -> None:
        self._destroy_inputs()
        self.release()
        for publisher in self._publishers_made:
            self.destroy_lifecycle_publisher(publisher)
        self._publishers_made.clear()

    # ------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configure()
        except ConfigError as err:
            self.config_error = str(err)
            self.get_logger().error(f"configure failed: {err}")
            self._release_all()
            return FAILURE
        except Exception as err:  # a bug, not a configuration: rclpy would swallow it silently
            self.config_error = f"{type(err).__name__}: {err}"
            self.get_logger().error(f"configure failed:\n{traceback.format_exc()}")
            self._release_all()
            return FAILURE
        self.config_error = ""
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.activate()
        return super().on_activate(state)  # enables the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_inputs()
        self.deactivate()
        return super().on_deactivate(state)  # disables the lifecycle publishers

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_inputs()
        if state.label == "active":  # `state` is the state the shutdown started from
            self.deactivate()
        self._release_all()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_all()
        return SUCCESS  # back to unconfigured
