// Column matrices in panels: one image's matrix of `rows` rows and n4 vec4 columns stored as consecutive
// panels of `panel` vec4 columns (the last one narrower where n4 is not a multiple), each panel rows x width,
// row-major. A GEMM walking down the rows of a plain matrix whose rows are longer than ~2 KB (maps of more than
// 512 pixels) steps past what the CPU's stride prefetcher follows; within a panel the same walk reads 256 bytes
// per row, consecutively. The matrix's size is unchanged (rows * n4). panel 0: plain rows.
// Included by wgsl/ops/conv_columns.wgsl (im2col writes panels) and wgsl/ops/conv.wgsl (the GEMMs read them).
struct Panel {
  // offset of (row 0, column c) minus c, in vec4s from the matrix's start, and the panel's row stride
  base: u32,
  width: u32,
}

// The panel holding vec4 column c: element (row, c) is at base + row * width + c.
fn panelOf(panel: u32, c: u32, rows: u32, n4: u32) -> Panel {
  if (panel == 0u) {
    return Panel(0u, n4);
  }
  let first = c - c % panel;
  return Panel(first * rows - first, min(panel, n4 - first));
}
