"""The one exception family of dcsim.

Messages follow Amaranth's form, "X must be Y, not {value!r}", and say how to fix the
problem. The command line turns a :class:`DcsimError` into exit status 2 with its
one-line message, except a :class:`ToolError` (a tool that failed: exit status 1);
anything else is a bug (exit status 1).
"""


class DcsimError(Exception):
    """Base class of every error dcsim raises on purpose (bad input or usage)."""


class ConfigError(DcsimError, ValueError):
    """A configuration field is out of range or inconsistent with another one."""


class FormatError(DcsimError, ValueError):
    """An encoded object (sparse matrix, Huffman stream, layer) is malformed."""


class ContainerError(DcsimError):
    """A ``.dcz`` file is truncated, corrupted, of another version or not a .dcz."""


class DataError(DcsimError):
    """A data set is missing or malformed (for instance MNIST is not installed)."""


class FitError(DcsimError):
    """A model does not fit the engine configuration (SRAM depth, code width, ...)."""


class ToolError(DcsimError):
    """An external tool (Verilator, the C++ compiler, a simulation) is missing or failed;
    the command line exits with status 1 and the message names the tool's log."""


class UsageError(DcsimError):
    """A command-line argument is wrong; the message names the argument or path itself
    (the command line adds no input file in front of it)."""
