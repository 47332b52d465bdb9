/* Marrow-Find full-resolution viewer: OpenSeadragon over the workers' Deep Zoom tiles.
 *
 * The original is the base layer; Grad-CAM and the segmentation are further tiled
 * images on top (opacity 0 until shown, so their tiles load only when wanted); the
 * white-cell outlines are an SVG drawn in image pixels and kept on the image as it
 * zooms and pans. Each layer has a show box and an opacity slider.
 *
 * The viewer's state is mirrored in data- attributes of #osd (zoom, the deepest
 * level drawn, tiles loaded, each layer's opacity) for people using the page's
 * inspector and for the browser tests.
 */
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";

  function init() {
    var element = document.getElementById("osd");
    if (!element || typeof OpenSeadragon === "undefined") return;
    var width = parseInt(element.getAttribute("data-width"), 10);
    var height = parseInt(element.getAttribute("data-height"), 10);
    var status = document.getElementById("viewer-status");

    // OpenSeadragon adds a <style> for touch screens unless one is there; the CSP
    // refuses inline styles, so an empty marker stands in (the rule is in viewer.css).
    if (!document.querySelector("style[data-openseadragon-mobile-css]")) {
      var marker = document.createElement("style");
      marker.setAttribute("data-openseadragon-mobile-css", "true");
      document.head.appendChild(marker);
    }

    var viewer = OpenSeadragon({
      element: element,
      prefixUrl: element.getAttribute("data-prefix-url"),
      tileSources: element.getAttribute("data-original"),
      drawer: "canvas",
      showNavigator: true,
      navigatorPosition: "BOTTOM_RIGHT",
      maxZoomPixelRatio: 8,  // up to 8 screen pixels per image pixel
      visibilityRatio: 0.5,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      crossOriginPolicy: false,
      ajaxWithCredentials: true
    });
    window.marrowFindViewer = viewer;

    var layers = {};  // key -> {item: TiledImage | null, show, opacity, fieldset}
    var loaded = 0;
    var deepest = -1;

    function report() {
      element.setAttribute("data-zoom", viewer.viewport.getZoom(true).toFixed(4));
      var base = viewer.world.getItemAt(0);
      if (base) element.setAttribute("data-image-zoom", base.viewportToImageZoom(viewer.viewport.getZoom(true)).toFixed(4));
      element.setAttribute("data-deepest-level", String(deepest));
      element.setAttribute("data-tiles-loaded", String(loaded));
    }

    function effectiveOpacity(layer) {
      return layer.show.checked ? parseInt(layer.opacity.value, 10) / 100 : 0;
    }

    function apply(key) {
      var layer = layers[key];
      var value = effectiveOpacity(layer);
      if (key === "cells") {
        if (cellsSvg) cellsSvg.style.opacity = String(value);
      } else if (layer.item) {
        layer.item.setOpacity(value);
      }
      layer.output.textContent = layer.opacity.value + "%";
      element.setAttribute("data-opacity-" + key, value.toFixed(2));
    }

    document.querySelectorAll(".viewer-side fieldset.layer[data-layer]").forEach(function (fieldset) {
      var key = fieldset.getAttribute("data-layer");
      var show = fieldset.querySelector("[data-role=show]");
      var opacity = fieldset.querySelector("[data-role=opacity]");
      if (!show || !opacity) return;
      layers[key] = { item: null, show: show, opacity: opacity, output: fieldset.querySelector("[data-role=opacity-value]") };
      show.addEventListener("change", function () { apply(key); });
      opacity.addEventListener("input", function () {
        if (!show.checked) show.checked = true;  // moving the slider of a hidden layer shows it
        apply(key);
      });
    });

    viewer.addHandler("open", function () {
      document.querySelectorAll(".viewer-side fieldset.layer[data-dzi]").forEach(function (fieldset) {
        var key = fieldset.getAttribute("data-layer");
        viewer.addTiledImage({
          tileSource: fieldset.getAttribute("data-dzi"),
          opacity: 0,
          success: function (event) {
            if (!layers[key]) return;
            layers[key].item = event.item;
            apply(key);
          },
          error: function () {
            fieldset.disabled = true;
            fieldset.insertAdjacentHTML("beforeend", '<p class="card-error">This layer could not be loaded.</p>');
          }
        });
      });
      drawCells();
      element.setAttribute("data-ready", "true");
      if (status) status.textContent = "Drag to pan, scroll to zoom; the deepest zoom shows the original's own pixels.";
      report();
    });
    viewer.addHandler("open-failed", function (event) {
      if (status) status.textContent = "The image tiles could not be loaded (" + (event.message || "error") + ").";
      element.setAttribute("data-ready", "failed");
    });
    viewer.addHandler("tile-loaded", function (event) {
      loaded += 1;
      if (event.tiledImage === viewer.world.getItemAt(0) && event.tile.level > deepest) deepest = event.tile.level;
      report();
    });
    viewer.addHandler("animation-finish", report);

    // --- white-cell outlines as vectors -----------------------------------------
    var cellsSvg = null;
    var cellsGroup = null;

    function drawCells() {
      var cells = JSON.parse(element.getAttribute("data-cells") || "[]");
      if (!cells.length || !layers.cells) return;
      cellsSvg = document.createElementNS(SVG_NS, "svg");
      cellsSvg.setAttribute("class", "osd-cells");
      cellsSvg.setAttribute("aria-hidden", "true");
      cellsGroup = document.createElementNS(SVG_NS, "g");
      cellsSvg.appendChild(cellsGroup);
      cells.forEach(function (cell) {
        var shape;
        if (cell.contour && cell.contour.length > 2) {
          shape = document.createElementNS(SVG_NS, "polygon");
          shape.setAttribute("points", cell.contour.map(function (p) { return p[0] + "," + p[1]; }).join(" "));
        } else {
          var b = cell.bbox;
          shape = document.createElementNS(SVG_NS, "rect");
          shape.setAttribute("x", b[0]); shape.setAttribute("y", b[1]);
          shape.setAttribute("width", b[2] - b[0]); shape.setAttribute("height", b[3] - b[1]);
        }
        shape.setAttribute("stroke", cell.colour);
        shape.setAttribute("data-cell", cell.index);
        shape.setAttribute("data-label", cell.label);
        var title = document.createElementNS(SVG_NS, "title");
        title.textContent = "#" + cell.index + " " + cell.name +
          (cell.reviewed ? " (reviewed)" : (cell.confidence !== null ? " (AI " + Math.round(cell.confidence * 100) + "%)" : ""));
        shape.appendChild(title);
        cellsGroup.appendChild(shape);
      });
      viewer.canvas.appendChild(cellsSvg);
      viewer.addHandler("update-viewport", placeCells);
      placeCells();
      apply("cells");
    }

    function placeCells() {
      var base = viewer.world.getItemAt(0);
      if (!cellsGroup || !base) return;
      // The base image's own conversion: the viewport's warns (and is inexact) once layers are added.
      var origin = base.imageToViewerElementCoordinates(new OpenSeadragon.Point(0, 0));
      var corner = base.imageToViewerElementCoordinates(new OpenSeadragon.Point(width, 0));
      var scale = (corner.x - origin.x) / width;
      cellsGroup.setAttribute("transform", "translate(" + origin.x + "," + origin.y + ") scale(" + scale + ")");
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
