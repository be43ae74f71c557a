// Draws /trends from the figures the server embedded (script#trend-data).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trend-data").textContent);
  var grades = { P1: "#c62828", P2: "#ef6c00", P3: "#f9a825", P4: "#1565c0" };
  var pct = function (v) { return v === null ? null : Math.round(v * 1000) / 10; };

  function periodChart(id, rows) {
    var chart = echarts.init(document.getElementById(id));
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 48, right: 48, top: 36, bottom: 28 },
      xAxis: { type: "category", data: rows.map(function (r) { return r.key; }) },
      yAxis: [{ type: "value", name: "件" }, { type: "value", name: "%", max: 100 }],
      series: [
        { name: "投诉量", type: "bar", data: rows.map(function (r) { return r.cases; }) },
        { name: "办结率", type: "line", yAxisIndex: 1, data: rows.map(function (r) { return pct(r.handling_rate); }) },
        { name: "按时办结率", type: "line", yAxisIndex: 1, data: rows.map(function (r) { return pct(r.on_time_rate); }) },
        { name: "15日办结率", type: "line", yAxisIndex: 1, data: rows.map(function (r) { return pct(r.fifteen_day_rate); }) },
        { name: "满意度", type: "line", yAxisIndex: 1, data: rows.map(function (r) { return pct(r.satisfaction_rate); }) }
      ]
    });
  }

  function dailyChart(id, byKey, colours, marks) {
    var chart = echarts.init(document.getElementById(id));
    var names = Object.keys(byKey);
    var series = names.map(function (name) {
      var s = { name: name, type: "bar", stack: "day", data: byKey[name] };
      if (colours && colours[name]) s.itemStyle = { color: colours[name] };
      return s;
    });
    if (marks && series.length) {
      series[0].markPoint = {
        symbol: "triangle", symbolSize: 12, itemStyle: { color: "#7b1fa2" },
        data: data.daily.anomalies.map(function (a) {
          return { name: "激增：" + a.categories.join("、"), coord: [a.day, 0], value: a.categories.join("、") };
        })
      };
    }
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 40, right: 16, top: 36, bottom: 28 },
      xAxis: { type: "category", data: data.daily.days },
      yAxis: { type: "value" },
      series: series
    });
  }

  periodChart("chart-months", data.months);
  periodChart("chart-weeks", data.weeks);
  dailyChart("chart-daily-grade", data.daily.by_grade, grades, true);
  dailyChart("chart-daily-category", data.daily.by_category, null, false);
})();
