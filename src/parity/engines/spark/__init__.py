"""The Spark engine (distributed). Importing it imports pyspark; the core never does."""

from parity.engines.spark.engine import SparkEngine

__all__ = ["SparkEngine"]
