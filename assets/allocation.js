// Live progress of an allocation run: polls the run's progress.json every second and
// rewrites the page's words. The status region is aria-live, so only a changed message
// is announced; the details and the clock change quietly beside it.
const status = document.getElementById("allocation-status");
if (status) {
  const url = status.dataset.progressUrl;
  const message = document.getElementById("allocation-message");
  const details = document.getElementById("allocation-details");
  const clock = document.getElementById("allocation-clock");

  const poll = async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      const data = await response.json();
      if (data.status !== "running") {
        window.location.reload();
        return;
      }
      if (message.textContent !== data.message) {
        message.textContent = data.message;
      }
      details.replaceChildren(
        ...data.details.map((line) => {
          const item = document.createElement("li");
          item.textContent = line;
          return item;
        }),
      );
      clock.textContent = `About ${data.seconds_left} of ${data.time_limit} seconds left.`;
    } catch (error) {
      clock.textContent = "Lost contact with the server; trying again.";
    }
    window.setTimeout(poll, 1000);
  };
  window.setTimeout(poll, 1000);
}
