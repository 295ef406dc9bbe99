// Aegis dashboard: draws the charts (vendored ECharts) and follows the live feed. No inline
// scripts anywhere (the CSP forbids them): every page loads this file and it finds its work
// by element id. Tooltips are plain text or class-styled HTML, never inline styles.
(function () {
  'use strict';

  var CATEGORIES = ['amount', 'timing', 'location', 'duplicate', 'burst', 'shared_account', 'agent', 'verdicts', 'error'];
  var WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  var charts = [];

  function cssVar(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function categoryColor(category) {
    return cssVar('--cat-' + (CATEGORIES.indexOf(category) >= 0 ? category : 'none'), '#9aa5b1');
  }

  function categoryLabel(category) {
    return category ? String(category).replace(/_/g, ' ') : 'uncategorised';
  }

  function categoryClass(category) {
    return 'cat-' + (CATEGORIES.indexOf(category) >= 0 ? category : 'none');
  }

  function escapeHtml(value) {
    return String(value == null ? '' : value)
      .replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }

  function grouped(number) {
    return Number(number || 0).toLocaleString('en-IN');
  }

  function getJson(url) {
    return fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } }).then(function (response) {
      if (response.status === 401) {
        window.location.href = '/login';
        throw new Error('login required');
      }
      if (!response.ok) {
        throw new Error(url + ': HTTP ' + response.status);
      }
      return response.json();
    });
  }

  function makeChart(id) {
    var element = document.getElementById(id);
    if (!element || typeof echarts === 'undefined') {
      return null;
    }
    var chart = echarts.init(element, null, { renderer: 'canvas' });
    charts.push(chart);
    return chart;
  }

  function showMessage(chart, text) {
    if (chart) {
      chart.setOption({ title: { text: text, left: 'center', top: 'middle', textStyle: { color: '#66717d', fontSize: 13, fontWeight: 'normal' } } });
    }
  }

  window.addEventListener('resize', function () {
    charts.forEach(function (chart) { chart.resize(); });
  });

  // ---- Overview --------------------------------------------------------------------------

  function drawDaily(chart, daily) {
    if (!daily.length) {
      showMessage(chart, 'No transactions in this range');
      return;
    }
    // Two panels on one date axis, each with its own labelled scale, rather than two y-axes on
    // one panel (which made 60 anomalies look taller than 2,200 payments). Days without rows
    // come from the server as zeros, so gaps show as gaps.
    var dates = daily.map(function (d) { return d.date; });
    chart.setOption({
      animation: false,
      grid: [
        { left: 64, right: 24, top: 44, height: '38%' },
        { left: 64, right: 24, top: '66%', bottom: 44 }
      ],
      legend: { top: 0, data: ['normal', 'unscored / error', 'anomalous'] },
      tooltip: {
        trigger: 'axis',
        formatter: function (items) {
          var lines = ['<div class="tip-title">' + escapeHtml(items[0].axisValue) + '</div>'];
          items.forEach(function (item) {
            lines.push(escapeHtml(item.seriesName) + ': ' + grouped(item.value));
          });
          return lines.join('<br>');
        }
      },
      axisPointer: { link: [{ xAxisIndex: 'all' }] },
      xAxis: [
        { type: 'category', gridIndex: 0, data: dates, axisLabel: { show: false } },
        { type: 'category', gridIndex: 1, data: dates }
      ],
      yAxis: [
        { type: 'value', gridIndex: 0, name: 'transactions a day (anomalies below)', nameGap: 8, nameTextStyle: { align: 'left' }, splitNumber: 3, minInterval: 1, axisLabel: { formatter: function (v) { return grouped(v); } } },
        { type: 'value', gridIndex: 1, name: 'anomalies a day', nameGap: 8, nameTextStyle: { align: 'left' }, splitNumber: 2, minInterval: 1, axisLabel: { formatter: function (v) { return grouped(v); } } }
      ],
      dataZoom: [{ type: 'inside', xAxisIndex: [0, 1] }, { type: 'slider', xAxisIndex: [0, 1], height: 16, bottom: 6 }],
      series: [
        { name: 'normal', type: 'bar', stack: 'all', xAxisIndex: 0, yAxisIndex: 0, itemStyle: { color: cssVar('--normal', '#9aa5b1') }, data: daily.map(function (d) { return d.normal; }) },
        { name: 'unscored / error', type: 'bar', stack: 'all', xAxisIndex: 0, yAxisIndex: 0, itemStyle: { color: '#d5dae0' }, data: daily.map(function (d) { return d.other; }) },
        { name: 'anomalous', type: 'bar', xAxisIndex: 1, yAxisIndex: 1, itemStyle: { color: cssVar('--anomaly', '#c2410c') }, data: daily.map(function (d) { return d.anomalous; }) }
      ]
    });
  }

  function drawHeatmap(chart, cells) {
    var max = 1;
    var hasAny = false;
    var data = cells.map(function (cell) {
      max = Math.max(max, cell.count);
      hasAny = hasAny || cell.total > 0;
      return [cell.hour, cell.weekday, cell.count, cell.total];
    });
    if (!hasAny) {
      showMessage(chart, 'No transactions in this range');
      return;
    }
    var hours = [];
    for (var h = 0; h < 24; h += 1) {
      hours.push((h < 10 ? '0' : '') + h);
    }
    chart.setOption({
      animation: false,
      grid: { left: 48, right: 72, top: 12, bottom: 48 },
      tooltip: {
        formatter: function (item) {
          var v = item.data;
          return '<div class="tip-title">' + WEEKDAYS[v[1]] + ' ' + hours[v[0]] + ':00–' + hours[v[0]] + ':59</div>' +
            grouped(v[2]) + ' anomalies<br><span class="tip-muted">of ' + grouped(v[3]) + ' transactions</span>';
        }
      },
      xAxis: { type: 'category', data: hours, name: 'hour', nameLocation: 'middle', nameGap: 26, splitArea: { show: true } },
      yAxis: { type: 'category', data: WEEKDAYS, splitArea: { show: true } },
      visualMap: {
        dimension: 2, min: 0, max: max, calculable: true, orient: 'vertical', right: 0, top: 'middle', itemHeight: 160,
        inRange: { color: ['#f8fafc', '#fcd9bd', cssVar('--anomaly', '#c2410c')] }
      },
      series: [{ type: 'heatmap', data: data, emphasis: { itemStyle: { borderColor: '#1f2933', borderWidth: 1 } } }]
    });
  }

  var indiaMap = null;
  function loadIndia() {
    if (!indiaMap) {
      indiaMap = getJson('/assets/vendor/world-atlas/india.geo.json').then(function (geojson) {
        echarts.registerMap('India', geojson);
      });
    }
    return indiaMap;
  }

  function drawMap(chart, points) {
    loadIndia().then(function () {
      var byCategory = {};
      points.forEach(function (p) {
        var key = CATEGORIES.indexOf(p.category) >= 0 ? p.category : 'none';
        (byCategory[key] = byCategory[key] || []).push([p.lon, p.lat, p.score, p.id, p.amount, p.scheme, p.category]);
      });
      var maxScore = points.reduce(function (m, p) { return Math.max(m, p.score || 0); }, 0) || 1;
      var series = Object.keys(byCategory).map(function (key) {
        return {
          name: key === 'none' ? 'uncategorised' : categoryLabel(key),
          type: 'scatter',
          coordinateSystem: 'geo',
          data: byCategory[key],
          symbolSize: function (v) { return 5 + 9 * Math.sqrt(Math.max(v[2] || 0, 0) / maxScore); },
          itemStyle: { color: categoryColor(key), opacity: 0.8, borderColor: '#fff', borderWidth: 0.5 },
          emphasis: { scale: 1.6 }
        };
      });
      chart.setOption({
        animation: false,
        tooltip: {
          trigger: 'item',
          formatter: function (item) {
            var v = item.data;
            if (!v || v.length < 7) {
              return '';
            }
            return '<div class="tip-title">Transaction ' + escapeHtml(v[3]) + '</div>' +
              escapeHtml(v[5]) + ' · ' + escapeHtml(v[4]) + '<br>' +
              'score ' + (v[2] == null ? '—' : Number(v[2]).toFixed(4)) + ' · ' + escapeHtml(categoryLabel(v[6])) +
              '<br><span class="tip-muted">click to investigate</span>';
          }
        },
        geo: {
          map: 'India',
          roam: true,
          top: 8,
          bottom: 8,
          scaleLimit: { min: 0.8, max: 40 },
          itemStyle: { areaColor: '#eef1f5', borderColor: '#9aa5b1' },
          emphasis: { disabled: true },
          silent: true
        },
        series: series
      }, { replaceMerge: ['series'] });
      if (!points.length) {
        showMessage(chart, 'No located anomalies in this range');
      }
      chart.off('click');
      chart.on('click', function (item) {
        if (item.data && item.data[3] != null) {
          window.location.href = '/alerts/' + encodeURIComponent(item.data[3]);
        }
      });
    }).catch(function () {
      showMessage(chart, 'India outline missing from assets/vendor/world-atlas');
    });
  }

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element && element.textContent !== text) {
      element.textContent = text;
      element.classList.add('flash');
      window.setTimeout(function () { element.classList.remove('flash'); }, 1200);
    }
  }

  function updateKpis(kpis) {
    setText('kpi-transactions', kpis.transactions_text);
    setText('kpi-anomalies', kpis.anomalies_text);
    setText('kpi-rate', kpis.anomaly_percent_text);
    setText('kpi-scheme', kpis.top_scheme_text);
    setText('kpi-flagged', kpis.amount_flagged_text);
    setText('kpi-confirmed', kpis.amount_confirmed_text);
  }

  function liveItem(anomaly) {
    var item = document.createElement('li');
    item.className = 'fresh';
    var link = document.createElement('a');
    link.href = '/alerts/' + encodeURIComponent(anomaly.transaction_id);
    link.textContent = '#' + anomaly.transaction_id;
    item.appendChild(link);
    if (anomaly.category) {
      var badge = document.createElement('span');
      badge.className = 'badge ' + categoryClass(anomaly.category);
      badge.textContent = categoryLabel(anomaly.category);
      item.appendChild(badge);
    }
    var facts = document.createElement('span');
    facts.textContent = anomaly.scheme + ' · ' + anomaly.amount + ' · score ' + anomaly.score + ' · ' + (anomaly.timestamp || '');
    item.appendChild(facts);
    if (anomaly.headline) {
      var why = document.createElement('span');
      why.className = 'why';
      why.textContent = anomaly.headline;
      item.appendChild(why);
    }
    window.setTimeout(function () { item.classList.remove('fresh'); }, 4000);
    return item;
  }

  function followLive(query) {
    var list = document.getElementById('live-list');
    var status = document.getElementById('live-status');
    if (!list || typeof EventSource === 'undefined') {
      return;
    }
    var source = new EventSource('/events' + (query ? '?' + query : ''));
    source.addEventListener('open', function () {
      status.className = 'live-dot on';
      status.title = 'live';
    });
    source.addEventListener('error', function () {
      status.className = 'live-dot off';
      status.title = source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting';
      if (source.readyState === EventSource.CLOSED) {
        // Refused, not dropped: most often the session ended (signed out elsewhere, or idle).
        // Asking once more sends a signed-out page to the login form instead of leaving it
        // looking live.
        getJson('/api/model').catch(function () {});
      }
    });
    source.addEventListener('update', function (event) {
      var update = JSON.parse(event.data);
      updateKpis(update.kpis);
      var anomalies = update.new_anomalies || [];
      if (anomalies.length) {
        var empty = document.getElementById('live-empty');
        if (empty) {
          empty.remove();
        }
        anomalies.forEach(function (anomaly) {
          list.insertBefore(liveItem(anomaly), list.firstChild);
        });
        while (list.children.length > 50) {
          list.removeChild(list.lastChild);
        }
      }
    });
  }

  function overview(root) {
    var query = root.getAttribute('data-query') || '';
    var daily = makeChart('chart-daily');
    var heatmap = makeChart('chart-heatmap');
    var map = makeChart('chart-map');
    [daily, heatmap, map].forEach(function (chart) { if (chart) { chart.showLoading('default', { text: '' }); } });
    getJson('/api/summary' + (query ? '?' + query : '')).then(function (summary) {
      [daily, heatmap, map].forEach(function (chart) { if (chart) { chart.hideLoading(); } });
      if (daily) { drawDaily(daily, summary.daily); }
      if (heatmap) { drawHeatmap(heatmap, summary.heatmap); }
      if (map) { drawMap(map, summary.map); }
      var unlocated = Math.max(0, (summary.kpis.anomalies || 0) - summary.map_located);
      setText('map-note', (summary.map_located > summary.map.length
        ? 'Showing the ' + summary.map.length.toLocaleString('en-IN') + ' highest-scoring of ' +
          summary.map_located.toLocaleString('en-IN') + ' located anomalies. '
        : '') + (unlocated > 0
        ? unlocated.toLocaleString('en-IN') + (unlocated === 1 ? ' anomaly has' : ' anomalies have') +
          ' no location and ' + (unlocated === 1 ? 'is' : 'are') + ' not on the map.'
        : ''));
    }).catch(function (error) {
      [daily, heatmap, map].forEach(function (chart) {
        if (chart) { chart.hideLoading(); showMessage(chart, 'Could not load the chart data'); }
      });
      if (window.console) { console.error(error); }
    });
    // The live stream gets the filters as asked: with the page's default dates fixed in, it
    // would stop showing new alerts at the first midnight.
    followLive(root.getAttribute('data-live-query') || '');
  }

  // ---- Model -----------------------------------------------------------------------------

  function shortNumber(value) {
    if (value === 0) { return '0'; }
    var magnitude = Math.abs(value);
    return magnitude >= 0.01 && magnitude < 1000 ? value.toPrecision(3) : value.toExponential(1);
  }

  function modelPage(chart) {
    getJson('/api/model').then(function (model) {
      var histogram = model.histogram;
      if (!histogram || !histogram.counts || !histogram.counts.length) {
        showMessage(chart, 'No score histogram in metrics.json');
        return;
      }
      var edges = histogram.edges;
      var threshold = histogram.threshold != null ? histogram.threshold : model.threshold;
      var labels = histogram.counts.map(function (_, i) { return shortNumber(Math.sqrt(edges[i] * edges[i + 1])); });
      var data = histogram.counts.map(function (count, i) {
        var above = threshold != null && edges[i] >= threshold;
        return { value: count > 0 ? count : null, itemStyle: { color: above ? cssVar('--anomaly', '#c2410c') : cssVar('--normal', '#9aa5b1') } };
      });
      var thresholdBin = 0;
      for (var i = 0; i < histogram.counts.length; i += 1) {
        if (threshold != null && edges[i] <= threshold) { thresholdBin = i; }
      }
      chart.setOption({
        animation: false,
        grid: { left: 56, right: 16, top: 24, bottom: 56 },
        tooltip: {
          trigger: 'item',
          formatter: function (item) {
            var i = item.dataIndex;
            return '<div class="tip-title">score ' + shortNumber(edges[i]) + ' – ' + shortNumber(edges[i + 1]) + '</div>' +
              grouped(histogram.counts[i]) + ' test transactions';
          }
        },
        xAxis: { type: 'category', data: labels, name: 'anomaly score (log bins)', nameLocation: 'middle', nameGap: 32 },
        yAxis: { type: 'log', name: 'transactions', min: 1 },
        series: [{
          type: 'bar',
          barCategoryGap: '5%',
          // On the log axis a bin of one transaction is as high as the axis' floor: nothing.
          barMinHeight: 3,
          data: data,
          markLine: threshold == null ? undefined : {
            symbol: 'none',
            lineStyle: { color: '#1f2933', type: 'dashed' },
            label: { formatter: 'threshold ' + shortNumber(threshold) },
            data: [{ xAxis: thresholdBin }]
          }
        }]
      });
    }).catch(function () {
      showMessage(chart, 'Could not load the histogram');
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var root = document.getElementById('overview');
    if (root) {
      overview(root);
    }
    var histogram = makeChart('chart-histogram');
    if (histogram) {
      modelPage(histogram);
    }
  });
})();
