"""DJSRH's affinity and loss against the equations of the paper, on tiny hand-checkable inputs."""
import math
from types import SimpleNamespace

import pytest
import torch

from lightning_hash.methods.djsrh import DJSRH, cosine_affinity, djsrh_loss, joint_semantics_matrix


def _cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_cosine_affinity_by_hand():
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    r = 1 / math.sqrt(2)
    # cos = [[1, 0, r], [0, 1, r], [r, r, 1]] ; S = 2 cos - 1
    expected = torch.tensor([[1.0, -1.0, 2 * r - 1], [-1.0, 1.0, 2 * r - 1], [2 * r - 1, 2 * r - 1, 1.0]])
    assert torch.allclose(cosine_affinity(f), expected, atol=1e-6)


@pytest.mark.parametrize("m", [3, 5])
def test_joint_semantics_matrix_follows_eq3_with_actual_batch_size(m):
    g = torch.Generator().manual_seed(m)
    fi, ft = torch.rand(m, 4, generator=g), torch.rand(m, 6, generator=g)
    beta, eta = 0.3, 0.4
    fi_l, ft_l = fi.tolist(), ft.tolist()
    s_tilde = [[beta * (2 * _cos(fi_l[i], fi_l[j]) - 1) + (1 - beta) * (2 * _cos(ft_l[i], ft_l[j]) - 1)
                for j in range(m)] for i in range(m)]
    expected = [[(1 - eta) * s_tilde[i][j] + eta * sum(s_tilde[i][k] * s_tilde[j][k] for k in range(m)) / m
                 for j in range(m)] for i in range(m)]
    got = joint_semantics_matrix(fi, ft, beta=beta, eta=eta)
    assert torch.allclose(got, torch.tensor(expected), atol=1e-5)


def test_joint_semantics_matrix_rejects_unpaired_rows():
    with pytest.raises(ValueError, match="pairs"):
        joint_semantics_matrix(torch.rand(3, 2), torch.rand(4, 2), beta=0.5, eta=0.1)


def test_loss_is_zero_when_codes_reconstruct_mu_s():
    # orthogonal codes: every cosine matrix is the identity; S = I / mu makes every term vanish
    codes = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    mu = 1.5
    loss, terms = djsrh_loss(codes, codes * 0.5, torch.eye(3) / mu, mu=mu, lambda1=0.3, lambda2=0.7)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    assert all(t.item() == pytest.approx(0.0, abs=1e-7) for t in terms.values())


def test_loss_matches_eq5_elementwise():
    bi = torch.tensor([[0.5, -0.2], [0.1, 0.9], [-0.7, 0.3]])
    bt = torch.tensor([[0.4, 0.4], [-0.3, 0.8], [0.2, -0.6]])
    S = torch.tensor([[1.0, 0.2, -0.1], [0.2, 1.0, 0.3], [-0.1, 0.3, 1.0]])
    mu, l1, l2 = 1.5, 0.3, 0.2

    def term(a, b):
        a, b = a.tolist(), b.tolist()
        return sum((mu * S[i, j].item() - _cos(a[i], b[j])) ** 2 for i in range(3) for j in range(3)) / 9

    expected = l1 * term(bi, bi) + term(bi, bt) + l2 * term(bt, bt)
    loss, terms = djsrh_loss(bi, bt, S, mu=mu, lambda1=l1, lambda2=l2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert terms["it"].item() == pytest.approx(term(bi, bt), rel=1e-5)


def test_alpha_is_sqrt_of_the_trainers_epoch_counted_from_one():
    model = DJSRH(bits=8, image_dim=4, text_dim=3, image_hidden=0, text_hidden=0)
    assert model.alpha == 1.0                      # no trainer: first epoch
    model._trainer = SimpleNamespace(current_epoch=3)
    assert model.alpha == 2.0                      # 0-based epoch 3 is epoch t = 4, alpha = sqrt(4)


def test_training_step_uses_tanh_alpha_codes_and_decreases_loss():
    torch.manual_seed(0)
    model = DJSRH(bits=8, image_dim=6, text_dim=5, image_hidden=16, text_hidden=16, lr_image=0.05, lr_text=0.05)
    model.log = lambda *a, **k: None
    batch = {"image": torch.rand(12, 6), "text": torch.rand(12, 5)}
    opt = model.configure_optimizers()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = model.training_step(batch, 0)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="text_dim"):
        DJSRH(bits=8, image_dim=4)
    with pytest.raises(ValueError, match="image_dim"):
        DJSRH(bits=8, text_dim=4)
    with pytest.raises(ValueError, match="bits"):
        DJSRH(bits=0, image_dim=4, text_dim=4)


def test_raw_image_branch_uses_a_frozen_feature_network_for_S():
    model = DJSRH(bits=8, text_dim=5, image_backbone="resnet18", pretrained=False, finetune_backbone=True,
                  image_hidden=0)
    model.log = lambda *a, **k: None
    frozen_before = {k: v.clone() for k, v in model.feature_net.state_dict().items()}
    batch = {"image": torch.rand(4, 3, 32, 32), "text": torch.rand(4, 5)}
    opt = model.configure_optimizers()
    loss = model.training_step(batch, 0)
    loss.backward()
    opt.step()
    assert model.encode(batch, "image").shape == (4, 8)
    assert all(torch.equal(v, model.feature_net.state_dict()[k]) for k, v in frozen_before.items())
    assert not any(p.requires_grad for p in model.feature_net.parameters())
    moved = [not torch.equal(a, b) for a, b in zip(model.backbone.state_dict().values(), frozen_before.values())]
    assert any(moved)  # the trained backbone moved away from the frozen copy


def test_missing_pretrained_weights_give_a_clear_message(monkeypatch):
    import timm
    from lightning_hash.nn.backbone import PretrainedWeightsUnavailable

    def offline(*args, **kwargs):
        if kwargs.get("pretrained"):
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(PretrainedWeightsUnavailable, match="pretrained=False"):
        DJSRH(bits=8, text_dim=5, image_backbone="resnet18", pretrained=True)
