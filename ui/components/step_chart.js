// A metric over training steps, drawn with uPlot: one line (a run's page) or a line per run (runs compared).
// uPlot is loaded with the first chart, not with every page.
import { useEffect, useRef } from "preact/hooks";
import { html } from "../html.js";

// `lines`: [{ label, colour, steps, values }], each in step order. Steps the lines do not share are joined over
// (uPlot.join aligns them on the steps of all). `lines` is drawn again when it is another array: make it once.
export function StepChart({ name, lines, testid }) {
  const box = useRef(null);
  useEffect(() => {
    let plot = null;
    let gone = false;
    // The element as it is now: by the time uPlot has loaded, a live re-render may have unmounted it (and
    // Preact set the ref to null), in which case the chart is not drawn there.
    const element = box.current;
    import("uplot").then(({ default: uPlot }) => {
      if (gone || !element || !element.isConnected) return;
      const data = lines.length === 1 ? [lines[0].steps, lines[0].values] : uPlot.join(lines.map((l) => [l.steps, l.values]));
      plot = new uPlot(
        {
          title: name,
          width: Math.min(element.clientWidth || 420, 520),
          height: 220,
          scales: { x: { time: false } },
          axes: [{ label: "step" }, {}],
          series: [{ label: "step" }, ...lines.map((l) => ({
            label: l.label, stroke: l.colour, width: 2, spanGaps: true, points: { show: l.steps.length < 50 },
          }))],
        },
        data,
        element,
      );
    });
    return () => { gone = true; plot?.destroy(); };
  }, [name, lines]);
  return html`<div class="curve" ref=${box} data-testid=${testid} data-lines=${lines.length}></div>`;
}

// A line of `lines`, its points put in step order (uPlot.join and the axis need them so).
export function lineOf(label, colour, steps, values) {
  const order = steps.map((_, i) => i).sort((a, b) => steps[a] - steps[b]);
  return { label, colour, steps: order.map((i) => steps[i]), values: order.map((i) => values[i]) };
}
