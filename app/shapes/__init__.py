"""The procedural shapes world: scenes, rendering, captions, edits, vocabulary and the detector."""
from .captions import CAPTION_KINDS, GENEVAL_TAGS, CaptionedScene, describe, geneval_metadata, sample_captioned_scene, scene_for_metadata
from .dataset import caption_order, frame_order, label_map, sample_t2i_examples
from .detect import Detection, detect, foreground_mask
from .edits import EDIT_KINDS, EditTriple, edit_kind, sample_edit
from .palette import BACKGROUND, CLASSES, COLOR_NAMES, COLORS, NUM_LABELS, label_index, label_name
from .relations import RELATIONS, relative_position
from .render import object_mask, render
from .scene import Scene, ShapeObject, random_scene
from .vocab import VOCABULARY, UnknownWordError, check_words, tokenize_words
