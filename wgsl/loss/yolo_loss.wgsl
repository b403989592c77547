// YOLOv5 v7.0 ComputeLoss forward and its gradient wrt the raw head logits (docs/training.md §6), one detection
// layer per dispatch of `obj_all` / `entries`, then `finish` once. Heads are the head convs' NCHW outputs:
// channel a*no + f.
// Gradients are written (not accumulated) into a same-layout buffer; `finish` writes [lbox, lobj, lcls, loss].
// The gradients are those of loss * loss_scale[0] (GradScaler.scale(loss) under amp, 1 otherwise); the items
// are unscaled.
override WG: u32 = 64u;
const EPS: f32 = 1e-7;
const FOCAL_ALPHA: f32 = 0.25;
const FOUR_OVER_PI2: f32 = 0.40528473456935109;

struct Layer {
  head_off: u32, head_bstride: u32, grad_off: u32, grad_bstride: u32,
  bs: u32, na: u32, no: u32, nc: u32,
  ny: u32, nx: u32, entry_base: u32, partial_base: u32,
  obj_groups: u32, layer: u32, nl: u32, _p1: u32,
  box_gain: f32, obj_gain: f32, cls_gain: f32, balance: f32,
  cls_pw: f32, obj_pw: f32, gamma: f32, smoothing: f32,
}

struct Totals { nl: u32, _p0: u32, _p1: u32, _p2: u32, box_gain: f32, obj_gain: f32, cls_gain: f32, _p3: f32 }

@group(0) @binding(0) var<storage, read> head: array<f32>;
@group(0) @binding(1) var<storage, read_write> grad: array<f32>;
// 16 words per entry: b, a, gj, gi, tcls, obj_winner, -, -, tx, ty, tw, th (f32 bits), aw, ah (f32 bits), -, -.
@group(0) @binding(2) var<storage, read> entries: array<u32>;
// Entry count per layer for this batch (the first nl words of the buffer `finish` reads as fin_counts).
@group(0) @binding(3) var<storage, read> counts: array<u32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;
@group(0) @binding(5) var<uniform> L: Layer;
// Per-entry scratch of `entries`: dCIoU/d(tx, ty, tw, th logits) then the clamped IoU, 5 floats per entry.
@group(0) @binding(6) var<storage, read_write> scratch: array<f32>;

// `finish` only.
@group(0) @binding(7) var<storage, read> fin_partials: array<f32>;
@group(0) @binding(8) var<storage, read> fin_counts: array<u32>;
@group(0) @binding(9) var<storage, read_write> items: array<f32>;
@group(0) @binding(10) var<uniform> T: Totals;

// [S, 1/S] (`obj_all` / `entries_main`).
@group(0) @binding(11) var<storage, read> loss_scale: array<f32>;

var<workgroup> red: array<vec3f, WG>;

// counts[6 * nl]: images in this batch (<= the planned bs; the rest of the batch is padding).
fn images_slot() -> u32 { return 6u * L.nl; }

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

// torch BCEWithLogits with pos_weight, wrapped in FocalLoss when gamma > 0: (loss, dloss/dx).
fn bce(x: f32, y: f32, pw: f32, gamma: f32) -> vec2f {
  let m = max(-x, 0.0);
  let lw = 1.0 + (pw - 1.0) * y;
  let l = (1.0 - y) * x + lw * (log(exp(-m) + exp(-x - m)) + m);
  let s = sigmoid(x);
  let dl = (1.0 - y) - lw * (1.0 - s);
  if (gamma <= 0.0) { return vec2f(l, dl); }
  let pt = y * s + (1.0 - y) * (1.0 - s);
  let af = y * FOCAL_ALPHA + (1.0 - y) * (1.0 - FOCAL_ALPHA);
  let q = 1.0 - pt;
  let md = select(pow(q, gamma), 0.0, q <= 0.0);
  let dmd = select(-gamma * pow(q, gamma - 1.0) * (2.0 * y - 1.0) * s * (1.0 - s), 0.0, q <= 0.0);
  return vec2f(l * af * md, af * (dl * md + l * dmd));
}

fn head_index(b: u32, a: u32, f: u32, s: u32) -> u32 {
  return L.head_off + b * L.head_bstride + (a * L.no + f) * L.ny * L.nx + s;
}
fn grad_index(b: u32, a: u32, f: u32, s: u32) -> u32 {
  return L.grad_off + b * L.grad_bstride + (a * L.no + f) * L.ny * L.nx + s;
}

// Sums red[..].xyz over the workgroup into red[0].
fn reduce(lid: u32) {
  for (var step = WG / 2u; step > 0u; step = step / 2u) {
    workgroupBarrier();
    if (lid < step) { red[lid] = red[lid] + red[lid + step]; }
  }
  workgroupBarrier();
}

// Every cell: objectness against target 0 (winners are corrected by `entries`); all other fields' grads zeroed.
@compute @workgroup_size(WG)
fn obj_all(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wg: vec3u) {
  let hw = L.ny * L.nx;
  let cells = L.bs * L.na * hw;
  let images = counts[images_slot()];
  let c = wg.x * WG + lid;
  var l = 0.0;
  if (c < cells) {
    let b = c / (L.na * hw);
    let a = (c / hw) % L.na;
    let s = c % hw;
    var g = 0.0;
    // Padding images of a short last batch get no loss and no gradient, so they change no weight.
    if (b < images) {
      let r = bce(head[head_index(b, a, 4u, s)], 0.0, L.obj_pw, L.gamma);
      l = r.x;
      g = loss_scale[0] * L.obj_gain * L.balance * r.y / f32(L.na * hw);
    }
    for (var f = 0u; f < L.no; f++) {
      grad[grad_index(b, a, f, s)] = select(0.0, g, f == 4u);
    }
  }
  red[lid] = vec3f(l, 0.0, 0.0);
  reduce(lid);
  if (lid == 0u) { partials[L.partial_base + wg.x] = red[0].x; }
}

struct Entry { b: u32, a: u32, s: u32, tcls: u32, winner: bool, tbox: vec4f, anchor: vec2f }

fn entry(k: u32) -> Entry {
  let o = (L.entry_base + k) * 16u;
  var e: Entry;
  e.b = entries[o];
  e.a = entries[o + 1u];
  e.s = entries[o + 2u] * L.nx + entries[o + 3u];
  e.tcls = entries[o + 4u];
  e.winner = entries[o + 5u] != 0u;
  e.tbox = vec4f(bitcast<f32>(entries[o + 8u]), bitcast<f32>(entries[o + 9u]), bitcast<f32>(entries[o + 10u]),
    bitcast<f32>(entries[o + 11u]));
  e.anchor = vec2f(bitcast<f32>(entries[o + 12u]), bitcast<f32>(entries[o + 13u]));
  return e;
}

fn dmax(a: f32, b: f32) -> f32 { return select(select(0.0, 0.5, a == b), 1.0, a > b); }

// CIoU (xywh, eps 1e-7, alpha detached) of box 1 vs box 2 and dCIoU/d(box 1): returns (ciou, gx, gy, gw, gh).
fn ciou(p: vec4f, t: vec4f) -> array<f32, 5> {
  let b1x1 = p.x - p.z / 2.0; let b1x2 = p.x + p.z / 2.0; let b1y1 = p.y - p.w / 2.0; let b1y2 = p.y + p.w / 2.0;
  let b2x1 = t.x - t.z / 2.0; let b2x2 = t.x + t.z / 2.0; let b2y1 = t.y - t.w / 2.0; let b2y2 = t.y + t.w / 2.0;
  let iw_raw = min(b1x2, b2x2) - max(b1x1, b2x1);
  let ih_raw = min(b1y2, b2y2) - max(b1y1, b2y1);
  let iw = max(iw_raw, 0.0); let ih = max(ih_raw, 0.0);
  let inter = iw * ih;
  let uni = p.z * p.w + t.z * t.w - inter + EPS;
  let iou = inter / uni;
  let cw = max(b1x2, b2x2) - min(b1x1, b2x1);
  let ch = max(b1y2, b2y2) - min(b1y1, b2y1);
  let c2 = cw * cw + ch * ch + EPS;
  let sx = b2x1 + b2x2 - b1x1 - b1x2; let sy = b2y1 + b2y2 - b1y1 - b1y2;
  let rho2 = (sx * sx + sy * sy) / 4.0;
  let d = atan(t.z / t.w) - atan(p.z / p.w);
  let v = FOUR_OVER_PI2 * d * d;
  let alpha = v / (v - iou + (1.0 + EPS));
  let value = iou - (rho2 / c2 + v * alpha);
  let g_rho2 = -1.0 / c2; let g_c2 = rho2 / (c2 * c2); let g_v = -alpha;
  let g_union = -inter / (uni * uni);
  let g_inter = 1.0 / uni - g_union;
  let g_d = g_v * 2.0 * FOUR_OVER_PI2 * d;
  let r2 = p.z * p.z + p.w * p.w;
  let gw1 = g_union * p.w - g_d * p.w / r2;
  let gh1 = g_union * p.z + g_d * p.z / r2;
  let g_iw = select(0.0, g_inter * ih, iw_raw >= 0.0);
  let g_ih = select(0.0, g_inter * iw, ih_raw >= 0.0);
  let g_cw = g_c2 * 2.0 * cw; let g_ch = g_c2 * 2.0 * ch;
  let g_sx = g_rho2 * sx / 2.0; let g_sy = g_rho2 * sy / 2.0;
  let gbx2 = g_iw * dmax(b2x2, b1x2) + g_cw * dmax(b1x2, b2x2) - g_sx;
  let gbx1 = -g_iw * dmax(b1x1, b2x1) - g_cw * dmax(b2x1, b1x1) - g_sx;
  let gby2 = g_ih * dmax(b2y2, b1y2) + g_ch * dmax(b1y2, b2y2) - g_sy;
  let gby1 = -g_ih * dmax(b1y1, b2y1) - g_ch * dmax(b2y1, b1y1) - g_sy;
  return array<f32, 5>(value, gbx1 + gbx2, gby1 + gby2, gw1 + (gbx2 - gbx1) / 2.0, gh1 + (gby2 - gby1) / 2.0);
}

// One workgroup per layer. Phase 1 (entries in parallel): CIoU, box loss, box logit grads, objectness target.
// Phase 2 (fields in parallel, entries serially, so duplicate cells accumulate without races): scatter box and
// class grads, class loss, and the objectness correction at the cell each entry wins.
@compute @workgroup_size(WG)
fn entries_main(@builtin(local_invocation_index) lid: u32) {
  let n = counts[L.layer];
  let hw = L.ny * L.nx;
  var acc = vec3f(0.0);
  for (var k = lid; k < n; k += WG) {
    let e = entry(k);
    var sg: array<f32, 4>;
    for (var f = 0u; f < 4u; f++) { sg[f] = sigmoid(head[head_index(e.b, e.a, f, e.s)]); }
    let w2 = sg[2] * 2.0;
    let h2 = sg[3] * 2.0;
    let pbox = vec4f(sg[0] * 2.0 - 0.5, sg[1] * 2.0 - 0.5, w2 * w2 * e.anchor.x, h2 * h2 * e.anchor.y);
    let r = ciou(pbox, e.tbox);
    acc.x += 1.0 - r[0];
    for (var f = 0u; f < 4u; f++) {
      let ds = sg[f] * (1.0 - sg[f]);
      let dp = select(8.0 * sg[f] * ds * e.anchor[max(f, 2u) - 2u], 2.0 * ds, f < 2u);
      scratch[(L.entry_base + k) * 5u + f] = -r[f + 1u] * dp;
    }
    scratch[(L.entry_base + k) * 5u + 4u] = max(r[0], 0.0);
  }
  storageBarrier();
  workgroupBarrier();
  let nf = f32(n);
  let bs = f32(counts[images_slot()]);
  let ls = loss_scale[0];
  let box_scale = ls * L.box_gain * bs / nf;
  let cls_scale = ls * L.cls_gain * bs / (nf * f32(L.nc));
  let obj_scale = ls * L.obj_gain * L.balance / f32(L.na * hw);
  let cp = 1.0 - 0.5 * L.smoothing; let cn = 0.5 * L.smoothing;
  for (var f = lid; f < L.no; f += WG) {
    for (var k = 0u; k < n; k++) {
      let e = entry(k);
      let gi = grad_index(e.b, e.a, f, e.s);
      if (f < 4u) {
        grad[gi] += box_scale * scratch[(L.entry_base + k) * 5u + f];
      } else if (f == 4u) {
        if (e.winner) {
          let x = head[head_index(e.b, e.a, 4u, e.s)];
          let t = bce(x, scratch[(L.entry_base + k) * 5u + 4u], L.obj_pw, L.gamma);
          acc.z += t.x - bce(x, 0.0, L.obj_pw, L.gamma).x;
          grad[gi] = obj_scale * t.y;
        }
      } else if (L.nc > 1u) {
        let y = select(cn, cp, f - 5u == e.tcls);
        let r = bce(head[head_index(e.b, e.a, f, e.s)], y, L.cls_pw, L.gamma);
        acc.y += r.x;
        grad[gi] += cls_scale * r.y;
      }
    }
  }
  red[lid] = acc;
  reduce(lid);
  if (lid == 0u) {
    let o = L.partial_base + L.obj_groups;
    partials[o] = red[0].x;
    partials[o + 1u] = red[0].y;
    partials[o + 2u] = red[0].z;
  }
}

// items = [lbox, lobj, lcls, (lbox + lobj + lcls) * bs]. fin_counts: n per layer (per batch); then per layer
// (partial base, obj groups, cells per image, nc) and per layer the balance as f32 bits (plan time); then the
// number of images in this batch.
@compute @workgroup_size(1)
fn finish() {
  var lbox = 0.0; var lobj = 0.0; var lcls = 0.0;
  let images = fin_counts[6u * T.nl];
  for (var i = 0u; i < T.nl; i++) {
    let n = fin_counts[i];
    let o = T.nl + i * 4u;
    let base = fin_counts[o];
    let groups = fin_counts[o + 1u];
    let cells = fin_counts[o + 2u] * images;
    let nc = fin_counts[o + 3u];
    var obj = 0.0;
    for (var g = 0u; g < groups; g++) { obj += fin_partials[base + g]; }
    obj += fin_partials[base + groups + 2u];
    lobj += bitcast<f32>(fin_counts[T.nl * 5u + i]) * obj / f32(cells);
    if (n > 0u) {
      lbox += fin_partials[base + groups] / f32(n);
      if (nc > 1u) { lcls += fin_partials[base + groups + 1u] / f32(n * nc); }
    }
  }
  items[0] = lbox * T.box_gain;
  items[1] = lobj * T.obj_gain;
  items[2] = lcls * T.cls_gain;
  items[3] = (items[0] + items[1] + items[2]) * f32(images);
}
