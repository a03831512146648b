"""Starts the engine refuses, and runs that hang: a hang ends the job with a ToolError
naming the run and the layer instead of hanging the suite."""

import dataclasses

import numpy as np
import pytest
from cases import expected
from conftest import rtl_config

from dcsim.compress.layer import CompressedModel
from dcsim.errors import ToolError
from dcsim.hw.image import compile_model
from dcsim.hw.layouts import desc_layout
from dcsim.hw.sim import cycle_limit, image_run, run_job, stream_limit
from dcsim.hw.workloads import random_activations, random_layer, single_layer_model

N_PE = 2


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(21)
    fmt = rtl_config(N_PE).fmt
    two = CompressedModel(arch="two", input_shape=(12,), layers=(
        random_layer("a", 9, 12, 0.5, rng), random_layer("b", 5, 9, 0.6, rng)))
    one = single_layer_model(random_layer("c", 7, 12, 0.5, rng))
    x = fmt.to_fixed(random_activations(12, 0.8, rng))
    return two, one, x


def test_refused_starts_finish_at_once_and_flag(engine_build, models):
    config = rtl_config(N_PE)
    two, one, x = models
    image_two, image_one = compile_model(two, config), compile_model(one, config)
    runs = [image_run(image_two, x, n_layers=0),
            image_run(image_two, x, load=False, n_layers=3),
            image_run(image_two, x, load=False, n_layers=config.max_layers + 1),
            image_run(image_two, x, load=False),
            # descriptor 1 still holds layer b, but the last image loaded has one layer
            image_run(image_one, x, n_layers=2),
            image_run(image_one, x, load=False)]
    got = run_job(engine_build(N_PE), runs)["runs"]
    refused = {"refused": True, "done": True, "error": True, "busy": False}
    assert [got[i] for i in (0, 1, 2, 4)] == [refused] * 4
    assert got[3]["outputs"] == expected(two, x, config.fmt)[-1].tolist()
    assert got[5]["outputs"] == expected(one, x, config.fmt)[-1].tolist()


def _stuck_image(config, two):
    """``two``'s image with layer 1's descriptor saying 0 local rows: INIT never ends."""
    image = compile_model(two, config)
    field = desc_layout(config)["rows_local"]
    bad = image.descs[1] & ~(((1 << field.width) - 1) << field.offset)
    return dataclasses.replace(image, descs=[image.descs[0], bad])


def test_a_hung_layer_is_a_tool_error_naming_it(engine_build, models):
    config = rtl_config(N_PE)
    two, _, x = models
    image = _stuck_image(config, two)
    limit = cycle_limit(image)
    with pytest.raises(ToolError, match=rf"^The engine must finish every run, not hang: run 1: "
                                        rf"the engine hung in layer 1 \('b'\): no output "
                                        rf"within {limit} cycles of the start$"):
        run_job(engine_build(N_PE), [image_run(compile_model(two, config), x),
                                     image_run(image, x)])


def test_an_output_stream_never_ready_is_a_tool_error(engine_build, models):
    config = rtl_config(N_PE)
    _, one, x = models
    limit = stream_limit(7, 1.0)
    with pytest.raises(ToolError, match=rf"^The engine must finish every run, not hang: run 0: "
                                        rf"the engine hung in layer 0 \('c'\): the output "
                                        rf"stream gave 0 of 7 outputs in {limit} cycles$"):
        run_job(engine_build(N_PE), [image_run(compile_model(one, config), x)], out_pause=1.0)


def test_the_simulator_is_killed_at_its_wall_clock_limit(engine_build, models):
    config = rtl_config(N_PE)
    two, _, x = models
    run = image_run(_stuck_image(config, two), x, max_cycles=10 ** 9)
    with pytest.raises(ToolError, match=r"^The engine simulation must finish within its "
                                        r"wall-clock limit of 5 s, not run on; it was killed$"):
        run_job(engine_build(N_PE), [run], wall_seconds=5)
