"""Interleaved timing rounds, shared by the benches that print a time ratio: each round runs every variant
once, the order alternating between rounds; the headline is the fastest time of one variant over the
fastest of the other (other processes only ever add time), beside each round's own ratio."""


def alternating(names, round_index: int) -> list:
    """The variants in their order for this round: as given in even rounds, reversed in odd ones."""
    names = list(names)
    return names if round_index % 2 == 0 else names[::-1]


def fastest_ratio(rounds: list, numerator, denominator) -> tuple:
    """(fastest numerator / fastest denominator over all rounds, each round's numerator / denominator)
    from rounds of {variant: seconds}."""
    per_round = [r[numerator] / r[denominator] for r in rounds]
    return min(r[numerator] for r in rounds) / min(r[denominator] for r in rounds), per_round
