"""Trajectory datasets: the canonical HDF5 layout, DeepMind TFRecord and geoelements npz.

A dataset is a directory with ``metadata.json`` (``DatasetMetadata``) and one file per split.
Training reads the canonical layout lazily through ``open_split``; the other layouts are
converted to it with ``convert_dataset`` (no TensorFlow needed).
"""

from gns.data.convert import convert_dataset, detect_format, inspect_dataset
from gns.data.hdf5 import SPLITS, Trajectory, TrajectorySplit, open_split, write_split
from gns.data.metadata import DatasetMetadata, load_metadata, save_metadata
from gns.data.npz import read_npz_dataset, write_npz_dataset
from gns.data.stats import compute_statistics
from gns.data.tfrecord import read_tfrecord_dataset, write_tfrecord_dataset

__all__ = [
    "SPLITS",
    "DatasetMetadata",
    "Trajectory",
    "TrajectorySplit",
    "compute_statistics",
    "convert_dataset",
    "detect_format",
    "inspect_dataset",
    "load_metadata",
    "open_split",
    "read_npz_dataset",
    "read_tfrecord_dataset",
    "save_metadata",
    "write_npz_dataset",
    "write_split",
    "write_tfrecord_dataset",
]
