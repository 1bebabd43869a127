"""Linear probing of the latent space: frozen encoder + adapter, one linear classifier on
the flattened latent (how much class information the tokens keep, thesis Fig. 7.3)."""
import numpy as np
import torch


@torch.no_grad()
def latents_of(model, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    out = [model.encode(images[i:i + batch_size]).flatten(1) for i in range(0, len(images), batch_size)]
    return torch.cat(out).cpu().numpy()


def linear_probe_accuracy(model, train_images, train_labels, test_images, test_labels) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(latents_of(model, train_images))
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(latents_of(model, train_images)), train_labels)
    return float(clf.score(scaler.transform(latents_of(model, test_images)), test_labels))
