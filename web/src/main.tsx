import { render } from "preact";
import { App } from "./app";
import { Chat } from "./chat";
import { attachFiles } from "./file_ui";
import { resumeSavedLogin } from "./login";
import "./style.css";

const chat = new Chat();
render(<App chat={chat} />, document.getElementById("app")!);
attachFiles(chat);
void resumeSavedLogin(chat);
