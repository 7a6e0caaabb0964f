"""``tf: {strategy: mirrored}`` on two logical CPU devices: the step runs on both replicas, checkpoints restore."""
import json
import socket

from tf_helpers import start_edflow, tf_project


def test_mirrored_strategy_trains_on_two_logical_cpus_and_resumes(tmp_path):
    project = tf_project(tmp_path, plugins=[], tf={"jit": False, "strategy": "mirrored", "logical_cpus": 2})
    project.run("-t", "train.yaml", timeout=300).assert_success()
    (run,) = project.runs()
    metrics = project.metrics(run)
    assert all(m["replicas"] == 2 for m in metrics)  # the iterator's num_replicas, as the step saw it
    assert metrics[-1]["global_step"] == 20 and metrics[-1]["loss"] < metrics[0]["loss"]

    # The optimizer's slots are mirrored variables made in the strategy's scope when the checkpoint is restored.
    outcome = project.run("-p", str(run), "--num_steps", "24", timeout=300).assert_success()
    assert "restored checkpoint" in outcome.output
    assert [m["global_step"] for m in project.metrics(run)][-2:] == [20, 21]  # the first step of a run is logged
    assert (run / "train" / "checkpoints" / "latest").read_text().strip() == "0000000024"


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_multi_worker_mirrored_with_two_workers_on_this_machine(tmp_path):
    """Two workers, as on two machines: rank 0 creates the run folder and writes logs and checkpoints, worker 1
    joins the same run, and the gradients are all-reduced between them."""
    project = tf_project(tmp_path, plugins=[], num_steps=6, tf={"strategy": "multi_worker_mirrored"})
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = [start_edflow(project, "-t", "train.yaml", "--progress", "false",
                            env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    try:
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    (run,) = project.runs()  # worker 1 opened the run folder of rank 0
    metrics = project.metrics(run)
    assert [m["global_step"] for m in metrics] == [1, 5] and all(m["replicas"] == 2 for m in metrics)
    assert (run / "train" / "checkpoints" / "latest").read_text().strip() == "0000000006"
    assert "training finished at global step 6" in outputs[0]  # rank 0 reports for all; the others only warn
    assert "error" not in outputs[1].lower()


EQUIVALENCE_SCRIPT = """
import json, sys
import keras, numpy as np, tensorflow as tf
from edflow_tf import TemplateIterator, step_function
from edflow_tf.distribute import configure_devices, make_strategy

configure_devices({"logical_cpus": 2})

class Iterator(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = keras.optimizers.SGD(0.5)

    @step_function
    def train_step(self, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.model(x)[:, 0] - y))
            replica_loss = loss / self.num_replicas
        gradients = tape.gradient(replica_loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return {"loss": loss}

def trained(strategy):
    with make_strategy({"strategy": strategy}).scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
        iterator = Iterator({"tf": {"strategy": strategy, "jit": True}}, "", model)
    x = tf.constant(np.random.default_rng(1).normal(size=(8, 3)), tf.float32)
    losses = [float(iterator.train_step(x, tf.reduce_sum(x, axis=1))["loss"]) for _ in range(3)]
    return iterator.num_replicas, losses, [v.numpy().tolist() for v in model.trainable_variables]

print(json.dumps({"default": trained("default"), "mirrored": trained("mirrored")}))
"""


def test_mirrored_steps_equal_the_single_device_steps_with_the_loss_divided_by_the_replicas(tmp_path):
    """Each replica gets half of the batch, the replicas' gradients are summed by Keras and the returned loss is
    their mean: with the README's ``loss / self.num_replicas`` the training is the single-device training."""
    import subprocess
    import sys

    import numpy as np

    result = subprocess.run([sys.executable, "-c", EQUIVALENCE_SCRIPT], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    (one, single_losses, single_weights), (two, mirrored_losses, mirrored_weights) = outcome["default"], outcome["mirrored"]
    assert (one, two) == (1, 2)
    np.testing.assert_allclose(mirrored_losses, single_losses, rtol=1e-5)
    for mirrored, single in zip(mirrored_weights, single_weights):
        np.testing.assert_allclose(mirrored, single, rtol=1e-5, atol=1e-6)
