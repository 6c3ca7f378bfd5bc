"""``hgtrain benchmark``: time training steps or inference of a network (images/s, latency, FLOP/s,
memory).

Two modes, each on synthetic inputs made once before timing, so that only the network is timed:

* training (default, :mod:`~hgtrain.tools.benchmark.training_steps`): full optimisation steps of ``hgtrain
  fit`` (normalisation, target encoding, every stack's losses, backward, Adam), with the data
  pipeline measured on its own (``--data_workers N``) and reported next to it;
* inference (``--mode inference``, :mod:`~hgtrain.tools.benchmark.inference`): the whole network with
  decoding in eval mode: batch-1 latency and batch-N throughput, eager, ``torch.compile`` or the
  ``torch.export`` program.

Both report medians and quartiles after a warm-up, images/s, FLOPs (counted once, in
:mod:`hgtrain.models.flops`) and the achieved FLOP/s, and peak memory
(:mod:`~hgtrain.tools.benchmark.measure`). Options take the flag style of the Lightning subcommands
(``--batch_size 8 --channels_last true``), ``--config FILE`` reads any of them from a YAML file
(:mod:`~hgtrain.tools.benchmark.command`); before timing, a line says which configuration runs. ``--json
FILE`` writes the result, and ``--table`` prints Markdown tables of earlier results
(:mod:`~hgtrain.tools.benchmark.report`).

On a machine shared with other work, ``--versus OPTION`` times a configuration against itself with
one option on, both in one process with their calls interleaved, and reports the time ratio: the
fair way to measure an option's cost or gain when absolute times drift.
"""

from hgtrain.tools.benchmark.command import build_parser, main
from hgtrain.tools.benchmark.inference import InferenceConfig
from hgtrain.tools.benchmark.training_steps import BenchmarkConfig

__all__ = ["BenchmarkConfig", "InferenceConfig", "build_parser", "main"]
