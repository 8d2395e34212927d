"""Data: datasets, collate, DataLoader(s) and batch transforms; built-in datasets live in `learnloop.data.datasets`."""

from .batches import as_dataloaders
from .dataset import ArrayDataset, ImageFolder, LabelVocab, image_folder_split
from .images import Augment
from .loader import DataLoader, DataLoaders, collate
from .transforms import Normalize, ToCHW, ToFloat

__all__ = ["ArrayDataset", "Augment", "DataLoader", "DataLoaders", "ImageFolder", "LabelVocab", "Normalize", "ToCHW",
           "ToFloat", "as_dataloaders", "collate", "image_folder_split"]
