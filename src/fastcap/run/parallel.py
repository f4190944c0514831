"""Where the split-scan names used to live, kept so code that imports them goes on working:
the run engine is now `workers` (executors), `rings` (ring-buffer runs and numbering),
`split` (flows dealt to an executor's tasks) and `streamed` (`-j N` on this machine).
Nothing inside the package imports this module."""

from ..judge.judging import analyzer_for as analyzer_for
from ..judge.judging import judge as judge
from ..options import JudgeOptions as JudgeOptions
from .rings import RING_GAP_NS as RING_GAP_NS
from .rings import follows as follows
from .rings import session_in_chain as session_in_chain
from .split import FlowResult as FlowResult
from .split import FlowTask as FlowTask
from .split import SplitScan as SplitScan
from .split import _chain as _chain
from .split import _flow_tasks as _flow_tasks
from .split import iter_split as iter_split
from .split import iter_split_files as iter_split_files
from .split import numbered as numbered
from .split import reassemble_flows as reassemble_flows
from .split import split_files as split_files
from .split import split_scan as split_scan
from .workers import Executor as Executor
from .workers import PoolExecutor as PoolExecutor
from .workers import SerialExecutor as SerialExecutor
