"""Scenes over a Ray cluster (Ray Core actors): one model per actor, a GPU per actor when
the backend runs on CUDA, scenes handed out as actors free up; a failed scene is retried
once (on any actor) and then reported. Ray is the optional extra ``fcnkit[cluster]``.
"""

from __future__ import annotations

from typing import Any

from fcnkit.errors import BackendUnavailableError

#: Seconds one scene may take on an actor before it counts as failed.
SCENE_TIMEOUT_S = 3600


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("--ray needs Ray: pip install 'fcnkit[cluster]' (or pip install ray)") from None
    return ray


class _SceneWorker:
    """The actor: opens the model once, predicts scenes; returns (ok, result or message)."""

    def __init__(self, model: str, popts: dict):
        import os

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from fcnkit.geo.predict import open_predictor

        self.predictor = open_predictor(model, popts)
        self.model = popts.get("model_name") or model

    def run(self, scene: str, outdir: str, options) -> tuple[bool, Any]:
        from fcnkit.errors import FcnkitError
        from fcnkit.geo.predict import predict_scene

        try:
            return True, predict_scene(self.predictor, scene, outdir, options, model_name=self.model)
        except FcnkitError as e:  # a message travels better than an exception object
            return False, str(e)


def run_on_ray(model: str, scenes: list[str], outdir, options, popts: dict, address: str, num_actors,
               run, on_scene) -> None:
    """Run ``scenes`` on Ray actors and fill ``run`` (a :class:`fcnkit.geo.batch.RunResult`).

    Args:
        address: ``"local"`` starts a local Ray instance; else a cluster address ("auto",
            "ray://host:10001", "host:6379").

    Raises:
        BackendUnavailableError: Ray is not installed.
    """
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "log_to_driver": False}
        ray.init(address=None if address == "local" else address, **kwargs)
        started = True
    try:
        gpus = 1 if str(popts.get("device") or "").startswith("cuda") else 0
        n = max(1, min(len(scenes), num_actors or 2))
        actor_cls = ray.remote(num_cpus=1, num_gpus=gpus)(_SceneWorker)
        actors = [actor_cls.remote(model, popts) for _ in range(n)]
        pending = [(s, 1) for s in scenes]
        running: dict[Any, tuple[str, int, Any]] = {}
        free = list(actors)
        while pending or running:
            while pending and free:
                scene, attempt = pending.pop(0)
                actor = free.pop(0)
                running[actor.run.remote(scene, str(outdir), options)] = (scene, attempt, actor)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=SCENE_TIMEOUT_S)
            for ref in ready:
                scene, attempt, actor = running.pop(ref)
                try:
                    ok, value = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - an actor that died or raised
                    ok, value = False, f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e) else ''}"
                    actor = actor_cls.remote(model, popts)  # replace a possibly dead actor
                free.append(actor)
                _settle(run, on_scene, pending, scene, attempt, ok, value)
    finally:
        if started:
            ray.shutdown()


def _settle(run, on_scene, pending, scene, attempt, ok, value) -> None:
    from fcnkit.geo.predict import notify

    if ok:
        run.results.append(value)
        notify(on_scene, scene, "done", value)
    elif attempt == 1:
        run.retried.append(scene)
        pending.append((scene, 2))
        notify(on_scene, scene, "retry", value)
    else:
        run.failures[scene] = value
        notify(on_scene, scene, "failed", value)
