import { useState } from "react";

export default function App() {
  const [count, setCount] = useState(0);
  return (
    <main>
      <h1>Hello from React + Vite</h1>
      <button onClick={() => setCount(count + 1)}>clicked {count} times</button>
      <p>Edit src/App.jsx: the preview reloads by itself.</p>
    </main>
  );
}
