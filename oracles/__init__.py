"""fpharness ground truth: formats, exact rounding and mpmath oracles.

This package imports no ML framework. Public surface:

* :class:`Format` and :func:`get_format` (float16, bfloat16, float32, float64);
* :func:`round_mpf`, :func:`round_float64`: correct rounding, directly into a format;
* :func:`oracle` (decorator), :func:`get_oracle`, :data:`REGISTRY`: the oracle registry;
* :func:`evaluate`: an oracle's correctly rounded values as a :class:`Reference`;
* :func:`gradient` (decorator), :func:`gradient_oracle`, :data:`GRADIENTS`: derivatives of
  oracles and the derived oracles whose truth is a vector-Jacobian product;
* :func:`properties` (decorator), :func:`properties_of`, :class:`Properties`,
  :data:`PROPERTIES`: the laws (monotone, odd, bounded, permutation-symmetric) an oracle's
  correctly rounded results obey exactly, for consistency checks;
* :class:`FpharnessError`, the root of every error we raise, and its kinds
  :class:`UsageError` and :class:`OracleError`.

Importing any module of the package runs this file first, and this file registers the
built-in oracles (:mod:`oracles.catalogue`), so a lookup in :data:`REGISTRY` always sees
them. That is why :mod:`oracles.registry` never imports the catalogue: the catalogue
imports the registry, and the registry importing it back would be a cycle.
"""

# registers the built-in oracles, then their gradients and properties (see the docstring)
import oracles.catalogue
import oracles.catalogue_gradients
import oracles.catalogue_properties  # noqa: F401
from oracles.errors import FpharnessError, OracleError, UsageError
from oracles.evaluate import evaluate
from oracles.formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, FORMATS, Format, format_of_dtype, get_format
from oracles.gradients import GRADIENTS, gradient, gradient_oracle
from oracles.properties import PROPERTIES, Properties, properties, properties_of
from oracles.reference import Reference
from oracles.registry import REGISTRY, Arg, Oracle, Param, get_oracle, oracle
from oracles.rounding import round_float64, round_mpf, ulp_exponent


def all_oracles() -> list[Oracle]:
    """Every registered oracle (built-ins included), in name order."""
    return list(REGISTRY)


__all__ = [
    "BFLOAT16",
    "FLOAT16",
    "FLOAT32",
    "FLOAT64",
    "FORMATS",
    "GRADIENTS",
    "PROPERTIES",
    "REGISTRY",
    "Arg",
    "Format",
    "FpharnessError",
    "Oracle",
    "OracleError",
    "Param",
    "Properties",
    "Reference",
    "UsageError",
    "all_oracles",
    "evaluate",
    "format_of_dtype",
    "get_format",
    "get_oracle",
    "gradient",
    "gradient_oracle",
    "oracle",
    "properties",
    "properties_of",
    "round_float64",
    "round_mpf",
    "ulp_exponent",
]
