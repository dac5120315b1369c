// An ECG's samples from GET …/instances/{sop}/ecg (application/vnd.huizhen.ecg, docs/api.md):
// "HZE1", uint32 LE header length, the JSON header, then per group and channel int16 LE deltas.
// The deltas are summed in an Int16Array (the server's wrap-around, so values come back
// exactly); sensitivity, correction and baseline are applied once, here, in pydicom's order.

import { apiFetch } from "../../lib/api.js";

export const MEDIA_TYPE = "application/vnd.huizhen.ecg";

/** Parse the compact body (an ArrayBuffer) into {header, summary, screening, groups}. */
export function parseEcg(buffer) {
  const view = new DataView(buffer);
  const magic = String.fromCharCode(...new Uint8Array(buffer, 0, 4));
  if (magic !== "HZE1") throw new Error("not an ECG waveform body");
  const n = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 8, n)));
  let pos = 8 + n;
  const groups = header.groups.map((g) => {
    const channels = g.channels.map((c) => {
      const raw = new Int16Array(g.samples);
      let acc = 0;
      for (let i = 0; i < g.samples; i++) {
        acc = ((acc + view.getInt16(pos + 2 * i, true)) << 16) >> 16; // int16 wrap-around
        raw[i] = acc;
      }
      pos += 2 * g.samples;
      // value = raw * sensitivity * correction + baseline (pydicom's waveform_array)
      const values = new Float64Array(g.samples);
      const mv = new Float32Array(g.samples);
      const toMv = c.uv_per_unit / 1000;
      for (let i = 0; i < g.samples; i++) {
        values[i] = raw[i] * c.sensitivity * c.correction + c.baseline;
        mv[i] = values[i] * toMv;
      }
      return { lead: c.lead, unit: c.unit, raw, values, mv };
    });
    const label = (g.label || "").toUpperCase();
    return {
      label: g.label,
      rate: g.rate_hz,
      samples: g.samples,
      duration: g.samples / g.rate_hz,
      median: label.includes("MEDIAN") || label.includes("REPRESENT"),
      channels,
      lead(name) {
        return channels.find((c) => c.lead.toUpperCase() === String(name).toUpperCase()) || null;
      },
    };
  });
  const rhythm = groups.filter((g) => !g.median).sort((a, b) => b.duration - a.duration)[0]
    || groups[0];
  return {
    header,
    summary: header.summary || {},
    screening: header.screening || null,
    groups,
    rhythm,
    median: groups.find((g) => g.median) || null,
    bytes: buffer.byteLength,
  };
}

/** Fetch and parse one instance's ECG; `base` is …/studies/S/series/SE/instances/I. */
export async function loadEcg(base, { signal } = {}) {
  const response = await apiFetch(`${base}/ecg`, { headers: { Accept: MEDIA_TYPE }, signal });
  return parseEcg(await response.arrayBuffer());
}
