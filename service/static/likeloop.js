/* LikeLoop feedback widget: like / dislike / comment buttons for one LLM response.
 *
 * The page gets a feedback token from its server (ll.feedback_token(response_id) in the Python
 * SDK) and either marks an element:
 *
 *   <div data-likeloop-token="llft_..." data-likeloop-response="RESPONSE_ID"
 *        data-likeloop-url="https://likeloop.example.com"></div>
 *   <script src="https://likeloop.example.com/static/likeloop.js"></script>
 *
 * or calls LikeLoop.mount(element, {token, responseId, url}).
 *
 * Compare mode, for a page that shows two answers to one prompt side by side: the token is
 * minted with ll.feedback_token(a, compare_with=b), and the element names the second answer:
 *
 *   <div data-likeloop-token="llft_..." data-likeloop-response="A_ID" data-likeloop-compare="B_ID"
 *        data-likeloop-url="https://likeloop.example.com"></div>
 *
 * which renders "A is better", "B is better", "Tie" and "Both bad" (data-likeloop-action="a|b|
 * tie|both_bad" on elements of the page's own are wired instead). Buttons are rendered inside the
 * element unless it already holds elements with data-likeloop-action="like|dislike|comment",
 * which are wired instead. The token, not an API key, authorises the post; the service accepts it
 * for this one response only, until it expires. Events: "likeloop:sent" and "likeloop:error" on
 * the element, with the service's answer in event.detail.
 */
(function (global) {
  "use strict";

  function post(options, body) {
    return fetch(options.url.replace(/\/$/, "") + "/v1/feedback", {
      method: "POST",
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + options.token},
      body: JSON.stringify(Object.assign({response_id: options.responseId}, body)),
    }).then(function (resp) {
      return resp.json().then(function (data) {
        if (!resp.ok) { throw data; }
        return data;
      });
    });
  }

  function button(label, action, title) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = title;
    b.setAttribute("data-likeloop-action", action);
    b.style.cssText = "margin-right:.3rem;cursor:pointer;font-size:1rem";
    return b;
  }

  function mount(element, options) {
    options = Object.assign({
      token: element.getAttribute("data-likeloop-token"),
      responseId: element.getAttribute("data-likeloop-response"),
      compareWith: element.getAttribute("data-likeloop-compare"),
      url: element.getAttribute("data-likeloop-url") || "",
    }, options || {});
    if (!element.querySelector("[data-likeloop-action]")) {
      if (options.compareWith) {
        element.appendChild(button("A is better", "a", "The first answer is better"));
        element.appendChild(button("B is better", "b", "The second answer is better"));
        element.appendChild(button("Tie", "tie", "Both are as good"));
        element.appendChild(button("Both bad", "both_bad", "Neither answer is good"));
      } else {
        element.appendChild(button("\uD83D\uDC4D", "like", "Good answer"));
        element.appendChild(button("\uD83D\uDC4E", "dislike", "Bad answer"));
        element.appendChild(button("\uD83D\uDCAC", "comment", "Comment"));
      }
    }
    var status = document.createElement("span");
    status.setAttribute("data-likeloop-status", "");
    status.style.cssText = "margin-left:.4rem;font-size:.85rem;color:#555";
    element.appendChild(status);

    function send(body) {
      status.textContent = "...";
      return post(options, body).then(function (data) {
        status.textContent = "Thanks!";
        element.dispatchEvent(new CustomEvent("likeloop:sent", {detail: data}));
      }, function (err) {
        var message = (err && err.error && err.error.message) || "could not send feedback";
        status.textContent = message;
        element.dispatchEvent(new CustomEvent("likeloop:error", {detail: err}));
      });
    }

    element.querySelectorAll("[data-likeloop-action]").forEach(function (el) {
      el.addEventListener("click", function () {
        var action = el.getAttribute("data-likeloop-action");
        if (action === "comment") {
          var text = global.prompt("What could be better?");
          if (text) { send({type: "comment", text: text}); }
        } else if (options.compareWith) {
          send({type: "comparison", other_response_id: options.compareWith, choice: action});
        } else {
          send({type: action});
        }
      });
    });
    return {send: send};
  }

  function mountAll() {
    document.querySelectorAll("[data-likeloop-token]").forEach(function (el) {
      if (!el.hasAttribute("data-likeloop-mounted")) {
        el.setAttribute("data-likeloop-mounted", "");
        mount(el);
      }
    });
  }

  global.LikeLoop = {mount: mount, mountAll: mountAll};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mountAll);
  } else {
    mountAll();
  }
})(window);
