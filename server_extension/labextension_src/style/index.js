import './index.css';
import './projects.css';
