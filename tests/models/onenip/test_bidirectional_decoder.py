import torch

from nipad.models.onenip.bidirectional_decoder import BidirectionalBlock, BidirectionalDecoder


def _inputs(b=2, n=16, d=32):
    torch.manual_seed(0)
    return torch.randn(b, n, d), torch.randn(b, n, d), torch.randn(1, n, d)


def test_block_updates_both_streams_and_each_depends_on_the_other():
    block = BidirectionalBlock(32, 4, 64, 0.0).eval()
    prompt, image, pos = _inputs()
    new_prompt, new_image = block(prompt, image, pos, None)
    assert not torch.allclose(new_prompt, prompt) and not torch.allclose(new_image, image)
    other_image = image + torch.randn_like(image)
    p2, _ = block(prompt, other_image, pos, None)
    assert not torch.allclose(p2, new_prompt), "prompt stream must read the image (prompt -> image attention)"
    other_prompt = prompt + torch.randn_like(prompt)
    _, i2 = block(other_prompt, image, pos, None)
    assert not torch.allclose(i2, new_image), "image stream must read the prompt (image -> prompt attention)"


def test_image_stream_reads_the_updated_prompt():
    """I attends to P after P was updated from I: changing I at one token changes I elsewhere through P."""
    block = BidirectionalBlock(32, 4, 64, 0.0).eval()
    prompt, image, pos = _inputs()
    mask = torch.eye(16, dtype=torch.bool)  # no self attention: token 0 of I reaches I[5] only through P
    base = block(prompt, image, pos, mask)[1]
    changed = image.clone()
    changed[:, 0] += 5.0
    out = block(prompt, changed, pos, mask)[1]
    assert not torch.allclose(out[:, 5], base[:, 5])


def test_decoder_reconstruction_depends_on_prompt_and_repeats_prompts_for_two_streams():
    dec = BidirectionalDecoder(2, 32, 4, 64, 0.0).eval()
    prompt, image, pos = _inputs()
    out = dec(prompt, image, pos, None)
    assert out.shape == image.shape
    assert not torch.allclose(dec(prompt * 2, image, pos, None), out)
    doubled = dec(prompt, torch.cat([image, image]), pos, None)
    assert torch.allclose(doubled[:2], out, atol=1e-5) and torch.allclose(doubled[2:], out, atol=1e-5)


def test_static_decoder_never_updates_the_prompt():
    dec = BidirectionalDecoder(2, 32, 4, 64, 0.0, static=True).eval()
    prompt, image, pos = _inputs()
    out = dec(prompt, image, pos, None)
    assert out.shape == image.shape
    assert not hasattr(dec.layers[0], "cross_attn_prompt_to_image") and dec.final_attn_prompt_to_image is None
    out.sum().backward()
    assert all(p.grad is not None for p in dec.parameters()), "every parameter is used (DDP needs it)"
    assert not torch.allclose(dec(prompt * 2, image, pos, None), out)


def test_masked_final_attention_hides_the_query_token_at_its_own_position():
    """With no blocks, the reconstruction at token 0 comes from the final attention alone: open, it reads the image's
    token 0; neighbour-masked, a change there leaves it as it was."""
    prompt, image, pos = _inputs()
    changed = image.clone()
    changed[:, 0] += 5.0
    mask = torch.eye(16, dtype=torch.bool)
    for mask_final, moves in ((False, True), (True, False)):
        dec = BidirectionalDecoder(0, 32, 4, 64, 0.0, mask_final=mask_final).eval()
        moved = not torch.allclose(dec(prompt, changed, pos, mask)[:, 0], dec(prompt, image, pos, mask)[:, 0])
        assert moved == moves
