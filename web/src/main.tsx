import { render } from "preact";
import { App } from "./app";
import { Chat } from "./chat";
import "./style.css";

render(<App chat={new Chat()} />, document.getElementById("app")!);
