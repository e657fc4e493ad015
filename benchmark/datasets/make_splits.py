"""Maintainer tool: (re)writes the frozen split files from their published definitions and prints hashes.

The unseen lists are those of the peers' split files (SAKE, ECCV'18 / CVAE, SEM-PCYC recomputed from its
seeded code), as gathered in the project's field reference; the image-text splits follow DADN's rule.
Running it must leave every file byte-identical; a change needs a new split name and a registry hash.
"""

from __future__ import annotations

from benchmark.datasets.specs import SPECS
from benchmark.datasets.splits import SPLITS_DIR, write_split_file

SKETCH_UNSEEN = {
    ("sketchy", "sake-25"): (
        "SAKE dataset/Sketchy/zeroshot1",
        "cup swan harp squirrel snail ray pineapple volcano rifle scissors parrot windmill teddy_bear tree "
        "wine_bottle deer chicken airplane wheelchair tank umbrella butterfly camel horse bell",
    ),
    ("sketchy", "eccv-21"): (
        "Yelamarthi et al. ECCV 2018 (CVAE), classes outside ImageNet-1k",
        "bat cabin cow dolphin door giraffe helicopter mouse pear raccoon rhinoceros saw scissors seagull "
        "skyscraper songbird sword tree wheelchair windmill window",
    ),
    ("sketchy", "sem-pcyc-25"): (
        "SEM-PCYC seeded random split, recomputed from its code",
        "bear bell cannon door eyeglasses geyser guitar hamburger jack_o_lantern lobster motorcycle mushroom pear "
        "racket rhinoceros saw saxophone spoon squirrel tank teapot tiger trumpet violin wheelchair",
    ),
    ("tu-berlin", "sake-30"): (
        "SAKE dataset/TUBerlin/zeroshot",
        "banana bus tractor suitcase streetlight telephone bottle_opener canoe fan teacup penguin laptop shoe "
        "lighter hot_air_balloon pizza brain ant t-shirt trombone windmill snowboard table rollerblades parachute "
        "space_shuttle bridge frying-pan bread horse",
    ),
    ("tu-berlin", "sem-pcyc-30"): (
        "SEM-PCYC seeded random split, recomputed from its code",
        "backpack bicycle bookshelf cabinet calculator castle couch dolphin door_handle duck eyeglasses "
        "fire_hydrant flying_saucer foot hedgehog knife octopus pear purse rollerblades sailboat snail snake "
        "snowman swan tablelamp traffic_light truck umbrella walkie_talkie",
    ),
}


def main() -> None:
    for (dataset, split_name), (source, unseen_words) in SKETCH_UNSEEN.items():
        spec = SPECS[dataset]
        index = spec.name_index
        unseen_ids = set(index.ids_of(unseen_words.split()))
        unseen = [n for i, n in enumerate(spec.class_names) if i in unseen_ids]
        seen = [n for i, n in enumerate(spec.class_names) if i not in unseen_ids]
        digest = write_split_file(SPLITS_DIR / dataset / f"{split_name}.json", dataset, split_name, seen, unseen, source)
        print(f"{dataset}/{split_name}: {len(seen)} seen / {len(unseen)} unseen  {digest}")
    for dataset, spec in SPECS.items():
        if spec.kind != "image-text":
            continue
        names = spec.class_names
        unseen = [n for i, n in enumerate(names) if i % 2 == 0]  # 1-based id odd <=> (id - 1) % 2 == 0
        seen = [n for i, n in enumerate(names) if i % 2 == 1]
        digest = write_split_file(SPLITS_DIR / dataset / "dadn.json", dataset, "dadn", seen, unseen,
                                  "DADN code: 1-based class ids with (id - 1) % 2 == 0 are unseen")
        print(f"{dataset}/dadn: {len(seen)} seen / {len(unseen)} unseen  {digest}")


if __name__ == "__main__":
    main()
