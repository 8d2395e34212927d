"""Data: datasets, collate, DataLoader(s) and batch transforms; built-in datasets live in `learnloop.data.datasets`."""

from .dataset import ArrayDataset, ImageFolder, LabelVocab, image_folder_split
from .loader import DataLoader, DataLoaders, collate
from .transforms import Normalize, ToCHW

__all__ = ["ArrayDataset", "DataLoader", "DataLoaders", "ImageFolder", "LabelVocab", "Normalize", "ToCHW",
           "collate", "image_folder_split"]
