import { act, cleanup, fireEvent, render, renderHook, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiProblem } from "../api/problem";
import { useDraft } from "../hooks";
import { Field } from "./Field";
import { ProblemAlert } from "./ProblemAlert";

afterEach(() => {
  cleanup();
  sessionStorage.clear();
  vi.useRealTimers();
});

describe("ProblemAlert", () => {
  it("shows the title, detail, fields and request id as an alert", () => {
    const p = new ApiProblem(
      422,
      {
        type: "about:blank",
        title: "Unprocessable Entity",
        status: 422,
        detail: "the request body is invalid",
        request_id: "req-42",
        errors: [{ field: "title", message: "must be 1 to 200 characters" }],
      },
      "req-42",
      null,
    );
    render(<ProblemAlert error={p} />);
    const alert = screen.getByRole("alert");
    expect(alert.textContent).toContain("Unprocessable Entity (422)");
    expect(alert.textContent).toContain("the request body is invalid");
    expect(alert.textContent).toContain("title: must be 1 to 200 characters");
    expect(alert.textContent).toContain("Request id: req-42");
  });

  it("counts down to when a 429 may be retried", () => {
    vi.useFakeTimers();
    const p = new ApiProblem(
      429,
      { type: "about:blank", title: "Too Many Requests", status: 429, request_id: "r" },
      "r",
      2,
    );
    render(<ProblemAlert error={p} />);
    expect(screen.getByRole("alert").textContent).toContain("try again in 2 s");
    act(() => vi.advanceTimersByTime(1000));
    expect(screen.getByRole("alert").textContent).toContain("try again in 1 s");
    act(() => vi.advanceTimersByTime(1000));
    expect(screen.getByRole("alert").textContent).toContain("You can try again now.");
  });

  it("renders nothing without an error", () => {
    const { container } = render(<ProblemAlert error={null} />);
    expect(container.innerHTML).toBe("");
  });
});

describe("Field", () => {
  it("is labelled and ties its hint and error to the input", () => {
    const onChange = vi.fn();
    render(<Field label="Title" value="" onChange={onChange} hint="1 to 200" error="too long" />);
    const input = screen.getByLabelText("Title");
    expect(input.getAttribute("aria-invalid")).toBe("true");
    const described = (input.getAttribute("aria-describedby") ?? "").split(" ");
    expect(described.map((id) => document.getElementById(id)?.textContent)).toEqual([
      "1 to 200",
      "✖ too long",
    ]);
    fireEvent.change(input, { target: { value: "x" } });
    expect(onChange).toHaveBeenCalledWith("x");
  });
});

describe("useDraft", () => {
  it("keeps what was typed across a remount until cleared", () => {
    const first = renderHook(() => useDraft("t", { title: "" }));
    act(() => first.result.current[1]({ title: "typed" }));
    first.unmount();
    const second = renderHook(() => useDraft("t", { title: "" }));
    expect(second.result.current[0]).toEqual({ title: "typed" });
    act(() => second.result.current[2]());
    expect(second.result.current[0]).toEqual({ title: "" });
    expect(sessionStorage.getItem("basalt.draft.t")).toBeNull();
  });
});
