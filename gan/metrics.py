"""IS / FID / KID / precision-recall over a registered feature extractor. (Skeleton: the metrics helper fills it.)"""

EXTRACTORS = {"effnet": None, "inception": None}
