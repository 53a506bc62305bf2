// The operators' dashboard: charts of the last day (Chart.js), pictures of the screens that
// refresh when the worker took a new one, and ages that tick without asking the server.
// The page's parts are refreshed by htmx on "vdi:changed" (static/vdi/live.js); nothing polls.
import {
  BarController, BarElement, CategoryScale, Chart, Filler, LinearScale, LineController,
  LineElement, PointElement, Tooltip,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, Filler, LinearScale, LineController,
               LineElement, PointElement, Tooltip);

const COLORS = {
  sessions: "#2f5bd3", claims: "#137a3a", failures: "#b42318", claim_ready_seconds: "#a15c00",
};
const CHART_REFRESH_MS = 15000;  // hourly buckets: a burst of changes is one fetch
const charts = new Map();

function hourLabel(iso) {
  const date = new Date(iso);
  return `${String(date.getHours()).padStart(2, "0")}:00`;
}

function makeChart(canvas) {
  const series = canvas.dataset.series;
  const color = COLORS[series] || "#667085";
  const line = canvas.dataset.kind === "line";
  return new Chart(canvas, {
    type: line ? "line" : "bar",
    data: { labels: [], datasets: [{
      label: canvas.getAttribute("aria-label"), data: [], borderColor: color,
      backgroundColor: line ? `${color}33` : color, fill: line, spanGaps: true, tension: 0.25,
      pointRadius: line ? 2 : 0,
    }] },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: line ? undefined : 0 } },
                x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } } },
    },
  });
}

async function loadCharts() {
  const section = document.getElementById("dash-charts");
  if (!section) { return; }
  const response = await fetch(section.dataset.chartsUrl, { credentials: "same-origin" });
  if (!response.ok) { return; }
  const data = await response.json();
  const labels = data.hours.map(hourLabel);
  for (const [series, chart] of charts) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = data[series] || [];
    chart.update();
  }
  section.dataset.loaded = String(Date.now());
}

let chartTimer = null;
let lastLoad = 0;
function chartsChanged() {
  if (chartTimer) { return; }
  const wait = Math.max(0, lastLoad + CHART_REFRESH_MS - Date.now());
  chartTimer = setTimeout(() => {
    chartTimer = null;
    lastLoad = Date.now();
    loadCharts();
  }, wait);
}

// A new thumbnail of one desktop's screen: that picture alone is fetched again.
function thumbnailTaken(event) {
  const id = String(event.detail && event.detail.id);
  for (const spot of document.querySelectorAll(`[data-thumbnail="${CSS.escape(id)}"]`)) {
    const src = `${spot.dataset.src}?v=${Date.now()}`;
    if (spot.tagName === "IMG") {
      spot.src = src;
      continue;
    }
    const image = document.createElement("img");
    image.className = "thumb";
    image.width = 320;
    image.height = 240;
    image.alt = "The desktop's screen";
    image.dataset.thumbnail = id;
    image.dataset.src = spot.dataset.src;
    image.src = src;
    spot.replaceWith(image);
  }
}

function words(seconds) {
  if (seconds < 60) { return `${seconds} s`; }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) { return `${minutes} min`; }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function tick() {
  for (const age of document.querySelectorAll(".age[data-since]")) {
    const seconds = Math.max(0, Math.round((Date.now() - Date.parse(age.dataset.since)) / 1000));
    age.textContent = words(seconds);
  }
}

function start() {
  for (const canvas of document.querySelectorAll("canvas[data-series]")) {
    charts.set(canvas.dataset.series, makeChart(canvas));
  }
  lastLoad = Date.now();
  loadCharts();
  document.body.addEventListener("vdi:changed", chartsChanged);
  document.body.addEventListener("vdi:thumbnail", thumbnailTaken);
  tick();
  setInterval(tick, 5000);
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
